-- app.projects (issue 12, seed 002): the reference tenant resource, gated
-- by the plan's max_projects and metered once per project. The gate is a
-- deferred constraint trigger; this file runs it at each statement's end
-- (set constraints ... immediate) — tests/test_projects.py runs it at
-- commit.
begin;
\ir _helpers.psql
select plan(22);
set constraints app.gate_and_meter immediate;

select tests.user('pat@p.test') as pat \gset
select tests.user('gil@p.test') as gil \gset
select tests.user('mia@p.test') as mia \gset
select tests.user('out@o.test') as outsider \gset
select tests.personal_org(:'pat') as org \gset
insert into tenancy.memberships (organization_id, user_id, role_key, member_type) values
  (:'org', :'gil', 'tenant_guest', 'guest'), (:'org', :'mia', 'tenant_member', 'member');

select tests.act_as(:'pat');
insert into app.projects (organization_id, title) values (:'org', 'Roof') returning id as roof \gset
select is((select created_by from app.projects where id = :'roof'), :'pat'::uuid, 'a project records who created it');
select is((select quantity from usage.live_counts where organization_id = :'org' and meter_key = 'projects'), 1::bigint,
  'the organization counts one live project');
select is((select count(*)::int from usage.events where organization_id = :'org' and meter_key = 'projects'
            and idempotency_key = 'app.projects:' || :'roof'), 1, 'one usage event, keyed by the project');
select is((check_feature_access(:'pat', 'max_projects', :'org') ->> 'used')::int, 1, 'check_feature_access counts live projects');
select throws_ok(format($$insert into app.projects (organization_id, title, created_by) values (%L, 'Forged', %L)$$, :'org', :'outsider'),
  '42501', null, 'created_by is not the client''s to write');
select throws_ok(format($$select record_usage(%L, 'projects', 1, 'by-hand')$$, :'org'), '22023', null,
  'a counting meter is not fed by record_usage');

-- Seed 002's permissions guard each write.
select tests.act_as(:'gil');
select is((select count(*)::int from app.projects), 1, 'a guest (tenant.read) sees the projects');
select throws_ok(format($$insert into app.projects (organization_id, title) values (%L, 'Guest')$$, :'org'), '42501', null,
  'a guest cannot create one (project.create)');
select tests.act_as(:'mia');
insert into app.projects (organization_id, title) values (:'org', 'Mia''s');
update app.projects set title = 'Roof, phase 1' where id = :'roof';
select is((select title from app.projects where id = :'roof'), 'Roof, phase 1', 'a member updates (project.update)');
delete from app.projects where id = :'roof';
select is((select count(*)::int from app.projects where id = :'roof'), 1, 'a member without project.delete deletes nothing');
select tests.act_as(:'outsider');
select throws_ok(format($$insert into app.projects (organization_id, title) values (%L, 'Intruder')$$, :'org'), '42501', null,
  'another organization''s member cannot create one here');
select is((select count(*)::int from app.projects where organization_id = :'org'), 0, '... nor see them');

-- The free plan allows 3: the 4th is refused, deleting one gives the slot back.
select tests.act_as(:'pat');
insert into app.projects (organization_id, title) values (:'org', 'Third');
select throws_ok(format($$insert into app.projects (organization_id, title) values (%L, 'Fourth')$$, :'org'), '54000',
  format('limit max_projects reached: plan free allows 3 projects, organization %s has 3', :'org'),
  'the fourth project on the free plan is refused, naming the limit and the plan');
select is((select count(*)::int from app.projects where organization_id = :'org'), 3, '... and nothing was written');
delete from app.projects where id = :'roof';
select is((select quantity from usage.live_counts where organization_id = :'org' and meter_key = 'projects'), 2::bigint,
  'deleting a project gives its slot back');
select lives_ok(format($$insert into app.projects (organization_id, title) values (%L, 'Fourth')$$, :'org'), '... which the next one takes');
select is((select max(quantity) from usage.counters where organization_id = :'org' and meter_key = 'projects'), 3::bigint,
  'the period keeps its highest count');
reset role;
select throws_ok(format($$update app.projects set organization_id = %L where organization_id = %L$$, tests.personal_org(:'outsider'), :'org'),
  '23514', null, 'a project does not move to another organization (not even by the back end)');
-- An organization with projects can still be deleted (its counts go with it).
insert into app.projects (organization_id, title) values (tests.personal_org(:'outsider'), 'Doomed');
delete from auth.users where id = :'outsider';
select is((select count(*)::int from app.projects where title = 'Doomed'), 0, 'deleting a user deletes their personal organization''s projects');
select is((select aggregation from catalog.meters where key = 'projects'), 'live_count', 'the catalog says projects counts live rows');
select is((select aggregation from catalog.meters where key = 'api_call'), 'sum', '... and api calls summed');
-- A bad catalog: a gate on a feature without a meter.
select throws_ok($$insert into catalog.features (key, name, kind, counts) values ('max_x', 'X', 'limit', 'seats');
                   create table app.things (organization_id uuid not null, id uuid not null default gen_random_uuid(), primary key (organization_id, id));
                   create constraint trigger gate_and_meter after insert on app.things deferrable initially immediate
                     for each row execute function private.gate_and_meter('max_x');
                   insert into app.things (organization_id) values (gen_random_uuid())$$,
  '22023', null, 'a gate on a feature without a meter is a clear error');

select * from finish();
rollback;
