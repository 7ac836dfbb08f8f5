-- audit: the audit trail, impersonation, break-glass, security events,
-- incidents, retention.
begin;
\ir _helpers.psql
select plan(33);

select tests.user('staff@p.test') as staff \gset
select tests.user('helper@p.test') as helper \gset
select tests.user('cust@c.test') as cust \gset
select tests.user('plain@c.test') as plain \gset
select tests.grant_system_role(:'staff', 'platform_support');
select tests.grant_system_role(:'helper', 'platform_admin');

-- A grant writes its audit row and a security event.
select is((select count(*)::int from audit.platform_actions where action = 'iam.system_role_grant.insert' and target_table = 'iam.system_role_grants'),
  2, 'each grant wrote its audit row');
select is((select count(*)::int from audit.security_events where event_type = 'iam.system_role_granted' and severity = 'high'), 2,
  'each grant raised a security event');

-- Who acted, and the request context PostgREST sets.
select set_config('request.headers', '{"x-forwarded-for": "203.0.113.7, 10.0.0.1", "user-agent": "curl/8", "x-request-id": "req-42"}', true);
select tests.personal_org(:'cust') as cust_org \gset
select tests.act_as(:'helper');
select lives_ok(format($$select post_credit(%L, 500, 'USD', 'admin', 'goodwill-1', 'Goodwill')$$, :'cust_org'),
  'platform staff post an admin credit');
reset role;
select is((select array[actor_id::text, host(ip), user_agent, request_id] from audit.platform_actions where action = 'billing.credit.insert' and details #>> '{new,source}' = 'admin'),
  array[:'helper', '10.0.0.1', 'curl/8', 'req-42'],
  'the audit row names the actor and the request (the address the nearest proxy added, not the client''s claim)');

-- Impersonation.
select tests.act_as(:'plain');
select throws_ok(format($$select start_impersonation(%L, 'curious', 10)$$, :'cust'), '42501', null,
  'impersonation without platform.user.impersonate is refused');
reset role;
select tests.act_as(:'staff');
select throws_ok(format($$select start_impersonation(%L, 'help them', 10)$$, :'helper'), '42501', null,
  'platform staff cannot be impersonated');
select throws_ok(format($$select start_impersonation(%L, 'help me', 10)$$, :'staff'), '22023', null, 'nobody impersonates themselves');
select throws_ok(format($$select start_impersonation(%L, 'ok', 10)$$, :'cust'), '22023', null, 'a reason is required');
select throws_ok(format($$select start_impersonation(%L, 'ticket 77', 600)$$, :'cust'), '22023', null, 'at most 4 hours');
select start_impersonation(:'cust', 'ticket 77', 10) as sess \gset
reset role;
select is((select count(*)::int from audit.platform_actions where action = 'audit.impersonation_start.insert' and target_id = :'sess'), 1,
  'starting impersonation is audited');
-- While it is active, actions are attributed to both users.
select set_config('request.jwt.claims', json_build_object('sub', :'cust', 'role', 'authenticated', 'impersonation_session', :'sess')::text, true),
       set_config('role', 'authenticated', true);
select lives_ok(format($$update tenancy.organizations set name = 'Renamed while impersonated' where id = %L$$, tests.personal_org(:'cust')),
  'the impersonator acts as the user');
reset role;
update tenancy.organizations set status = 'suspended' where id = tests.personal_org(:'plain');
select set_config('request.jwt.claims', json_build_object('sub', :'cust', 'role', 'authenticated', 'impersonation_session', :'sess')::text, true);
update tenancy.organizations set status = 'active' where id = tests.personal_org(:'plain');
select is((select array[actor_id::text, impersonator_id::text, impersonation_session_id::text]
             from audit.platform_actions where action = 'tenancy.organization_status.update' order by occurred_at desc limit 1),
  array[:'cust', :'staff', :'sess'], 'an action under impersonation names both users and the session');
select set_config('request.jwt.claims', '', true);
select tests.act_as(:'staff');
select is(end_impersonation(), :'sess'::uuid, 'the impersonator ends the session');
select throws_ok($$select end_impersonation()$$, 'P0002', null, 'there is nothing left to end');
reset role;
-- An ended session's token opens nothing, audited or not.
select set_config('request.jwt.claims', json_build_object('sub', :'cust', 'role', 'authenticated', 'impersonation_session', :'sess')::text, true),
       set_config('role', 'authenticated', true);
select is((select count(*)::int from tenancy.organizations), 0, 'an ended impersonation token reads nothing');
reset role;
select set_config('request.jwt.claims', json_build_object('sub', :'cust', 'role', 'authenticated', 'impersonation_session', :'sess')::text, true);
select throws_ok(format($$update tenancy.organizations set status = 'suspended' where id = %L$$, tests.personal_org(:'plain')), '42501',
  format('impersonation session %s is not active', :'sess'), 'a privileged change under an ended session is refused');
select set_config('request.jwt.claims', '', true);
insert into audit.impersonation_sessions (impersonator_id, target_user_id, reason, started_at, expires_at)
values (:'staff', :'cust', 'old ticket', now() - interval '2 hours', now() - interval '1 hour') returning id as old_sess \gset
select set_config('request.jwt.claims', json_build_object('sub', :'cust', 'role', 'authenticated', 'impersonation_session', :'old_sess')::text, true);
select throws_ok(format($$update tenancy.organizations set status = 'suspended' where id = %L$$, tests.personal_org(:'plain')), '42501', null,
  'an expired session is refused');
select set_config('request.jwt.claims', '', true);

-- Break-glass.
select tests.grant_system_role(:'plain', 'platform_break_glass');
select tests.act_as(:'plain');
select ok(not has_system_permission('platform.system.configure'), 'a break-glass grant confers nothing until activated');
select lives_ok($$select activate_break_glass('primary database unreachable', 15)$$, 'activating it');
select ok(has_system_permission('platform.system.configure'), 'an activated break-glass grant confers its permissions');
reset role;
select tests.act_as(:'staff');
select throws_ok($$select activate_break_glass('the database is on fire', 30)$$, '42501', null, 'break-glass needs a break-glass grant');
reset role;
select tests.grant_system_role(:'staff', 'platform_break_glass');
select tests.act_as(:'staff');
select throws_ok($$select activate_break_glass('fire', 30)$$, '22023', null, 'break-glass needs a real reason');
select lives_ok($$select activate_break_glass('the database is on fire', 30)$$, 'break-glass with a grant and a reason');
reset role;
select is((select array_agg(distinct severity) from audit.security_events where event_type = 'break_glass.activated'), array['critical'],
  'break-glass raises a critical security event');

-- Append-only, also for the table owner; retention.
select throws_ok($$update audit.platform_actions set action = 'x.y'$$, '55000', null, 'audit rows cannot be updated, even by the owner');
select throws_ok($$delete from audit.security_events$$, '55000', null, 'audit rows cannot be deleted, even by the owner');
select throws_ok($$truncate audit.platform_actions$$, '55000', null, 'nor truncated');
set local role service_role;
select set_config('tenantdb.audit_purge', 'on', true);
select throws_ok($$delete from audit.platform_actions$$, '42501', null, 'service_role cannot delete audit rows, purge mark or not');
select set_config('tenantdb.audit_purge', 'off', true);
reset role;
select throws_ok($$select purge_audit(now() - interval '1 year')$$, '22023', null, 'the retention period cannot be cut short');
select is(purge_audit(now() - interval '3 years'), 0::bigint, 'purging past the retention period');
select is((select count(*)::int from audit.platform_actions where action = 'audit.purge'), 1, 'the purge audits itself');

-- Incidents move forward only.
select tests.act_as(:'staff');
select open_incident('Login outage', 'high') as inc \gset
select is(update_incident(:'inc', 'mitigated', 'Failover done'), 2, 'an incident moves forward');
select throws_ok(format($$select update_incident(%L, 'investigating', 'back?')$$, :'inc'), '22023', null, 'an incident does not move back');
reset role;

select * from finish();
rollback;
