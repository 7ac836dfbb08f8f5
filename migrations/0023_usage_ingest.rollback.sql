-- Rollback of 0023 usage ingest: the release before claims every key in
-- usage.idempotency_keys before it writes the event, so every key accepted
-- since the horizon is registered here first; the foreign keys come back
-- (an event whose organization or meter is gone
-- cannot exist: deleting an organization deleted its events, a meter with
-- counters kept its key). The partitions' key indexes go. tenantdb drops
-- the functions and triggers of 0023's repeatable after this file.
insert into usage.idempotency_keys (organization_id, idempotency_key, event_id, occurred_at)
select e.organization_id, e.idempotency_key, e.id, e.occurred_at
  from usage.events e
 where e.occurred_at >= coalesce((select h.registered_before from private.usage_key_horizon h), '-infinity')
on conflict on constraint idempotency_keys_pkey do nothing;
drop table private.usage_key_horizon;
do $partitions$
declare
  part record;
begin
  for part in
    select c.relname from pg_catalog.pg_inherits i
      join pg_catalog.pg_class c on c.oid = i.inhrelid
     where i.inhparent = 'usage.events'::regclass
  loop
    execute format('drop index if exists usage.%I', part.relname || '_key');
  end loop;
end
$partitions$;
alter table usage.events add constraint events_organization_id_fkey
  foreign key (organization_id) references tenancy.organizations (id) on delete cascade;
alter table usage.events add constraint events_meter_key_fkey
  foreign key (meter_key) references catalog.meters (key) on update cascade;
comment on column usage.events.idempotency_key is 'The caller''s key for this event; accepted once per organization forever (usage.idempotency_keys).';
comment on table usage.idempotency_keys is 'Every usage idempotency key ever accepted, per organization (the partitioned events table cannot hold a unique key across months).';
