-- Where one record_usage call's time goes: each step, in a transaction of
-- its own (a DO block that commits after every call), 3,000 calls a figure,
-- in one session, so the figures add up without the clients' scheduling.
--   psql -X -q -d "$DSN" -f bench/usage_breakdown.sql
-- $DSN: a superuser DSN of a migrated and seeded database with one user
-- (the usage_bench database that bench/usage_and_features.sh leaves).
select (select id from tenancy.organizations where personal_owner_id is not null limit 1) as org \gset
select set_config('bench.org', :'org', false) \g /dev/null
drop table if exists public.bench_breakdown;
create table public.bench_breakdown (like usage.events including defaults);
alter table public.bench_breakdown add primary key (organization_id, occurred_at, id);
create index on public.bench_breakdown (organization_id, meter_key, occurred_at);
create index on public.bench_breakdown (meter_key);
create unique index on public.bench_breakdown (organization_id, idempotency_key);
do $$
declare
  t0 timestamptz;
  org uuid := current_setting('bench.org');
  n int := 3000;
  x record;
begin
  for round in 1..2 loop
    t0 := clock_timestamp();
    for i in 1..n loop
      insert into public.bench_breakdown (organization_id, meter_key, quantity, idempotency_key, occurred_at)
      values (org, 'api_call', 1, gen_random_uuid()::text, now());
      commit;
    end loop;
    raise notice 'plain INSERT into a copy, and commit: % us', round(extract(epoch from clock_timestamp() - t0) * 1e6 / n, 1);
    t0 := clock_timestamp();
    for i in 1..n loop
      insert into usage.events (organization_id, meter_key, quantity, idempotency_key, occurred_at)
      values (org, 'api_call', 1, gen_random_uuid()::text, now()) on conflict do nothing;
      commit;
    end loop;
    raise notice 'INSERT into usage.events, and commit: % us', round(extract(epoch from clock_timestamp() - t0) * 1e6 / n, 1);
    t0 := clock_timestamp();
    for i in 1..n loop
      select * into x from private.usage_append(org, 'api_call', 1, gen_random_uuid()::text, now(), '{}');
      commit;
    end loop;
    raise notice 'usage_append (hold, probes, the event), and commit: % us', round(extract(epoch from clock_timestamp() - t0) * 1e6 / n, 1);
    t0 := clock_timestamp();
    for i in 1..n loop
      select * into x from private.record_usage(org, 'api_call', 1, gen_random_uuid()::text, now(), '{}');
      commit;
    end loop;
    raise notice 'private.record_usage, and commit: % us', round(extract(epoch from clock_timestamp() - t0) * 1e6 / n, 1);
  end loop;
end
$$;
drop table public.bench_breakdown;
