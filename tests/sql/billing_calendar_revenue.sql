-- The billing calendar (anchor day, time zone) and platform revenue.
begin;
\ir _helpers.psql
select plan(14);

select tests.user('cal@c.test') as cal \gset
select tests.personal_org(:'cal') as org \gset

select is((select start_date from private.billing_period(:'org', '2027-02-15 12:00+00')), date '2027-02-01',
  'without settings: calendar months in UTC');
select is((select period_start from private.billing_period(:'org', '2027-03-01 00:00+00')), timestamptz '2027-03-01 00:00+00',
  'a period starts at midnight UTC');
insert into billing.settings (organization_id, anchor_day) values (:'org', 31);
select is((select start_date from private.billing_period(:'org', '2027-02-28 10:00+00')), date '2027-02-28',
  'anchor 31 falls on the last day of February');
select is((select start_date from private.billing_period(:'org', '2027-02-27 10:00+00')), date '2027-01-31',
  'the day before belongs to the period from January 31');
select is((select end_date from private.billing_period(:'org', '2027-02-28 10:00+00')), date '2027-03-31',
  'and the February period ends on March 31');
select is((select start_date from private.billing_period(:'org', '2028-02-29 10:00+00')), date '2028-02-29', 'leap years too');
update billing.settings set anchor_day = 1, time_zone = 'Asia/Dhaka' where organization_id = :'org';
select is((select period_start from private.billing_period(:'org', '2027-03-01 00:00+06')), timestamptz '2027-03-01 00:00+06',
  'in the organization''s time zone, the period starts at its midnight');
select is((select start_date from private.billing_period(:'org', '2027-02-28 19:00+00')), date '2027-03-01',
  '19:00 UTC on Feb 28 is already March 1 in Dhaka');
select throws_ok(format($$update billing.settings set time_zone = 'Mars/Olympus' where organization_id = %L$$, :'org'), '22023', null,
  'an unknown time zone is refused');

-- Platform revenue: fee in basis points, rounded half up; once per payment.
insert into billing.connected_accounts (organization_id, provider, provider_account_id, application_fee_bps, status)
values (:'org', 'stripe', 'acct_1', 250, 'active');
select is(calculate_application_fee(:'org', 10000), 250::bigint, '2.5% of 100.00 is 2.50');
select is(calculate_application_fee(:'org', 20), 1::bigint, '2.5% of 0.20 (0.5 cent) rounds half up to 1');
select is(track_platform_revenue(:'org', 'stripe', 'ch_1', 10000, 'USD'), track_platform_revenue(:'org', 'stripe', 'ch_1', 10000, 'USD'),
  'a payment is tracked once');
select is((select application_fee_minor::bigint from platform_revenue_summary), 250::bigint, 'the summary adds up the fees');
select throws_ok(format($$select calculate_application_fee(%L, -1)$$, :'org'), '22023', null, 'a negative amount is refused');

select * from finish();
rollback;
