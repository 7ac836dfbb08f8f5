-- The dataset of bench/crm.sh (run by psql as a superuser on a migrated and
-- seeded database, in one transaction):
--   * 1,000,000 crm.people (psql variable people), each with one primary
--     person_emails row (first.last.N@ one of eight domains, gmail.com for
--     ~35 %) and one primary person_phones row (+1555 and seven digits,
--     unique), none verified (keys, as organizations' clients have); first and last
--     names drawn from 302 common first names and 363 common last names,
--     skewed towards the top of each list as real names are (the most
--     common first name ~2 % of people, 'John' ~1 %, 'Smith' ~1 %);
--   * 10,000 organizations (orgs) in all: the member's personal one, the
--     big organization, the filler user's personal one and 9,997 business
--     organizations owned by the filler;
--   * 1,000,000 crm.org_clients: every 10th person a client of the big
--     organization (100,000, big_clients), the others spread over the other
--     9,999 organizations (~90 each); each organization's own record of
--     its client holds the person's names, email and phone; rows of all
--     organizations interleave on disk, as clients arriving over the years
--     do; status 60 % active, 25 % lead, 15 % inactive;
--   * the member (crm-bench-member@bench.test) signed up the normal way and
--     the owner of the big organization through create_organization, so
--     private.tenant_access holds their permissions;
--   * one client of the big organization (person 500,000, in the middle
--     of the table) with 1,000 timeline events (events): 400 jobs, 250
--     invoices (lines, then open), 250 payments that pay them (lifetime
--     value, paid invoices, by the triggers) and 100 notes, interleaved
--     over three years.
-- Bulk rows are written with session_replication_role = replica (no
-- per-row triggers or foreign-key checks): people's primary email and
-- phone are set to their primary rows, as crm_primary_contact would, and
-- org_clients.search_name / search_contact to private.crm_search_name /
-- crm_search_contact of the client's own record, as org_clients_guard
-- would; both are checked at the end. The timeline's
-- rows go through every trigger.
\set ON_ERROR_STOP on
\if :{?people} \else \set people 1000000 \endif
\if :{?orgs} \else \set orgs 10000 \endif
\if :{?big_clients} \else \set big_clients 100000 \endif
\if :{?events} \else \set events 1000 \endif
set client_min_messages = warning;
begin;

-- The member, signed up; the big organization made by them.
insert into auth.users (email) values ('crm-bench-member@bench.test'), ('crm-bench-filler@bench.test');
select id as member from auth.users where email = 'crm-bench-member@bench.test' \gset
select id as filler from auth.users where email = 'crm-bench-filler@bench.test' \gset
select set_config('request.jwt.claims', json_build_object('sub', :'member', 'role', 'authenticated')::text, true) \g /dev/null
set local role authenticated;
select public.create_organization('CRM bench big organization', 'crm-bench-big', 'business') as big \gset
reset role;
select set_config('request.jwt.claims', '', true) \g /dev/null

set local session_replication_role = replica;

-- The filler's business organizations: 10,000 in all.
insert into tenancy.organizations (id, name, slug)
select md5('crm-bench-org-' || n)::uuid, format('CRM bench org %s', n), format('crm-bench-org-%s', n)
  from generate_series(1, :orgs - 3) n;
insert into tenancy.memberships (organization_id, user_id, role_key)
select md5('crm-bench-org-' || n)::uuid, :'filler', 'tenant_owner' from generate_series(1, :orgs - 3) n;

-- People, their emails and phones. u(n, k) is a uniform [0, 1) draw for
-- person n and stream k.
create function pg_temp.u(n bigint, k bigint) returns float8 language sql immutable
  as $$ select (hashint8extended(n, k) & 140737488355327)::float8 / 140737488355328 $$;
create temporary table bench_first_names on commit drop as
select (i - 1)::int as i, name
  from unnest(array[
      'James', 'Mary', 'John', 'Patricia', 'Robert', 'Jennifer', 'Michael', 'Linda', 'William', 'Elizabeth',
      'David', 'Barbara', 'Richard', 'Susan', 'Joseph', 'Jessica', 'Thomas', 'Sarah', 'Charles', 'Karen',
      'Christopher', 'Lisa', 'Daniel', 'Nancy', 'Matthew', 'Betty', 'Anthony', 'Margaret', 'Mark', 'Sandra',
      'Donald', 'Ashley', 'Steven', 'Kimberly', 'Paul', 'Emily', 'Andrew', 'Donna', 'Joshua', 'Michelle',
      'Kenneth', 'Carol', 'Kevin', 'Amanda', 'Brian', 'Dorothy', 'George', 'Melissa', 'Timothy', 'Deborah',
      'Ronald', 'Stephanie', 'Edward', 'Rebecca', 'Jason', 'Sharon', 'Jeffrey', 'Laura', 'Ryan', 'Cynthia',
      'Jacob', 'Kathleen', 'Gary', 'Amy', 'Nicholas', 'Angela', 'Eric', 'Shirley', 'Jonathan', 'Anna', 'Stephen',
      'Brenda', 'Larry', 'Pamela', 'Justin', 'Emma', 'Scott', 'Nicole', 'Brandon', 'Helen', 'Benjamin',
      'Samantha', 'Samuel', 'Katherine', 'Gregory', 'Christine', 'Alexander', 'Debra', 'Frank', 'Rachel',
      'Patrick', 'Carolyn', 'Raymond', 'Janet', 'Jack', 'Catherine', 'Dennis', 'Maria', 'Jerry', 'Heather',
      'Tyler', 'Diane', 'Aaron', 'Ruth', 'Jose', 'Julie', 'Adam', 'Olivia', 'Nathan', 'Joyce', 'Henry',
      'Virginia', 'Douglas', 'Victoria', 'Zachary', 'Kelly', 'Peter', 'Lauren', 'Kyle', 'Christina', 'Ethan',
      'Joan', 'Walter', 'Evelyn', 'Noah', 'Judith', 'Jeremy', 'Megan', 'Christian', 'Andrea', 'Keith', 'Cheryl',
      'Roger', 'Hannah', 'Terry', 'Jacqueline', 'Gerald', 'Martha', 'Harold', 'Gloria', 'Sean', 'Teresa',
      'Austin', 'Ann', 'Carl', 'Sara', 'Arthur', 'Madison', 'Lawrence', 'Frances', 'Dylan', 'Kathryn', 'Jesse',
      'Janice', 'Jordan', 'Jean', 'Bryan', 'Abigail', 'Billy', 'Alice', 'Joe', 'Judy', 'Bruce', 'Sophia',
      'Gabriel', 'Grace', 'Logan', 'Denise', 'Albert', 'Amber', 'Willie', 'Doris', 'Alan', 'Marilyn', 'Juan',
      'Danielle', 'Wayne', 'Beverly', 'Elijah', 'Isabella', 'Randy', 'Theresa', 'Roy', 'Diana', 'Vincent',
      'Natalie', 'Ralph', 'Brittany', 'Eugene', 'Charlotte', 'Russell', 'Marie', 'Bobby', 'Kayla', 'Mason',
      'Alexis', 'Philip', 'Lori', 'Louis', 'Alyssa', 'Johnny', 'Rose', 'Harry', 'Joanne', 'Howard', 'Julia',
      'Fred', 'Kathy', 'Todd', 'Ava', 'Craig', 'Mia', 'Carlos', 'Harper', 'Luis', 'Ella', 'Victor', 'Chloe',
      'Martin', 'Lily', 'Ernest', 'Zoe', 'Phillip', 'Nora', 'Shawn', 'Riley', 'Chad', 'Layla', 'Antonio', 'Aria',
      'Leonard', 'Scarlett', 'Tony', 'Addison', 'Stanley', 'Aubrey', 'Dale', 'Brooklyn', 'Manuel', 'Leah',
      'Rodney', 'Stella', 'Curtis', 'Hazel', 'Norman', 'Violet', 'Allen', 'Aurora', 'Marvin', 'Savannah',
      'Glenn', 'Audrey', 'Travis', 'Bella', 'Jeff', 'Claire', 'Chris', 'Lucy', 'Mike', 'Skylar', 'Luke',
      'Paisley', 'Caleb', 'Everly', 'Isaac', 'Caroline', 'Owen', 'Naomi', 'Liam', 'Elena', 'Lucas', 'Ruby',
      'Oliver', 'Eva', 'Leo', 'Sadie', 'Hunter', 'Quinn', 'Connor', 'Jade', 'Evan', 'Josephine', 'Ian', 'Joy',
      'Cole', 'Jocelyn', 'Max', 'Jolene', 'Jake', 'Johanna', 'Seth', 'Jodi', 'Colin', 'Josie', 'Miguel', 'Jon',
      'Jorge', 'Diego', 'Javier', 'Oscar', 'Pedro', 'Ricardo']) with ordinality as x (name, i);
create temporary table bench_last_names on commit drop as
select (i - 1)::int as i, name
  from unnest(array[
      'Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis', 'Rodriguez', 'Martinez',
      'Hernandez', 'Lopez', 'Gonzalez', 'Wilson', 'Anderson', 'Thomas', 'Taylor', 'Moore', 'Jackson', 'Martin',
      'Lee', 'Perez', 'Thompson', 'White', 'Harris', 'Sanchez', 'Clark', 'Ramirez', 'Lewis', 'Robinson',
      'Walker', 'Young', 'Allen', 'King', 'Wright', 'Scott', 'Torres', 'Nguyen', 'Hill', 'Flores', 'Green',
      'Adams', 'Nelson', 'Baker', 'Hall', 'Rivera', 'Campbell', 'Mitchell', 'Carter', 'Roberts', 'Gomez',
      'Phillips', 'Evans', 'Turner', 'Diaz', 'Parker', 'Cruz', 'Edwards', 'Collins', 'Reyes', 'Stewart',
      'Morris', 'Morales', 'Murphy', 'Cook', 'Rogers', 'Gutierrez', 'Ortiz', 'Morgan', 'Cooper', 'Peterson',
      'Bailey', 'Reed', 'Kelly', 'Howard', 'Ramos', 'Kim', 'Cox', 'Ward', 'Richardson', 'Watson', 'Brooks',
      'Chavez', 'Wood', 'James', 'Bennett', 'Gray', 'Mendoza', 'Ruiz', 'Hughes', 'Price', 'Alvarez', 'Castillo',
      'Sanders', 'Patel', 'Myers', 'Long', 'Ross', 'Foster', 'Jimenez', 'Powell', 'Jenkins', 'Perry', 'Russell',
      'Sullivan', 'Bell', 'Coleman', 'Butler', 'Henderson', 'Barnes', 'Gonzales', 'Fisher', 'Vasquez', 'Simmons',
      'Romero', 'Jordan', 'Patterson', 'Alexander', 'Hamilton', 'Graham', 'Reynolds', 'Griffin', 'Wallace',
      'Moreno', 'West', 'Cole', 'Hayes', 'Bryant', 'Herrera', 'Gibson', 'Ellis', 'Tran', 'Medina', 'Aguilar',
      'Stevens', 'Murray', 'Ford', 'Castro', 'Marshall', 'Owens', 'Harrison', 'Fernandez', 'McDonald', 'Woods',
      'Washington', 'Kennedy', 'Wells', 'Vargas', 'Henry', 'Chen', 'Freeman', 'Webb', 'Tucker', 'Guzman',
      'Burns', 'Crawford', 'Olson', 'Simpson', 'Porter', 'Hunter', 'Gordon', 'Mendez', 'Silva', 'Shaw', 'Snyder',
      'Mason', 'Dixon', 'Munoz', 'Hunt', 'Hicks', 'Holmes', 'Palmer', 'Wagner', 'Black', 'Robertson', 'Boyd',
      'Rose', 'Stone', 'Salazar', 'Fox', 'Warren', 'Mills', 'Meyer', 'Rice', 'Schmidt', 'Garza', 'Daniels',
      'Ferguson', 'Nichols', 'Stephens', 'Soto', 'Weaver', 'Ryan', 'Gardner', 'Payne', 'Grant', 'Dunn', 'Kelley',
      'Spencer', 'Hawkins', 'Arnold', 'Pierce', 'Vazquez', 'Hansen', 'Peters', 'Santos', 'Hart', 'Bradley',
      'Knight', 'Elliott', 'Cunningham', 'Duncan', 'Armstrong', 'Hudson', 'Carroll', 'Lane', 'Riley', 'Andrews',
      'Alvarado', 'Ray', 'Delgado', 'Berry', 'Perkins', 'Hoffman', 'Johnston', 'Matthews', 'Pena', 'Richards',
      'Contreras', 'Willis', 'Carpenter', 'Lawrence', 'Sandoval', 'Guerrero', 'George', 'Chapman', 'Rios',
      'Estrada', 'Ortega', 'Watkins', 'Greene', 'Nunez', 'Wheeler', 'Valdez', 'Harper', 'Burke', 'Larson',
      'Santiago', 'Maldonado', 'Morrison', 'Franklin', 'Carlson', 'Austin', 'Dominguez', 'Carr', 'Lawson',
      'Jacobs', 'O''Brien', 'Lynch', 'Singh', 'Vega', 'Bishop', 'Montgomery', 'Oliver', 'Jensen', 'Harvey',
      'Williamson', 'Gilbert', 'Dean', 'Sims', 'Espinoza', 'Howell', 'Li', 'Wong', 'Reid', 'Hanson', 'Le',
      'McCoy', 'Garrett', 'Burton', 'Fuller', 'Wang', 'Weber', 'Welch', 'Rojas', 'Lucas', 'Marquez', 'Fields',
      'Park', 'Yang', 'Little', 'Banks', 'Padilla', 'Day', 'Walsh', 'Bowman', 'Schultz', 'Luna', 'Fowler',
      'Mejia', 'Davidson', 'Acosta', 'Brewer', 'May', 'Holland', 'Juarez', 'Newman', 'Pearson', 'Curtis',
      'Cortez', 'Douglas', 'Schneider', 'Joseph', 'Barrett', 'Navarro', 'Figueroa', 'Keller', 'Avila', 'Wade',
      'Molina', 'Stanley', 'Hopkins', 'Campos', 'Barnett', 'Bates', 'Chambers', 'Caldwell', 'Beck', 'Lambert',
      'Miranda', 'Byrd', 'Craig', 'Ayala', 'Lowe', 'Frazier', 'Powers', 'Neal', 'Leonard', 'Gregory', 'Carrillo',
      'Sutton', 'Fleming', 'Rhodes', 'Shelton', 'Schwartz', 'Norris', 'Jennings', 'Watts', 'Duran', 'Walters',
      'Cohen', 'McDaniel', 'Moran', 'Parks', 'Steele', 'Vaughn', 'Becker', 'Holt', 'DeLeon', 'Barker', 'Terry',
      'Hale', 'Leon']) with ordinality as x (name, i);
create temporary table bench_people on commit drop as
select n, md5('crm-bench-person-' || n)::uuid as id, f.name as first_name, l.name as last_name,
       format('%s.%s.%s@%s', lower(f.name), regexp_replace(lower(l.name), '[^a-z]', '', 'g'), n,
              (array['gmail.com', 'gmail.com', 'gmail.com', 'gmail.com', 'gmail.com', 'gmail.com', 'gmail.com', 'yahoo.com', 'yahoo.com',
                     'yahoo.com', 'hotmail.com', 'hotmail.com', 'outlook.com', 'outlook.com', 'icloud.com', 'icloud.com', 'aol.com',
                     'comcast.net', 'example.com', 'example.com'])[1 + floor(20 * pg_temp.u(n, 5))::int]) as email,
       '+1555' || lpad(((n::bigint * 3141593 + 2718281) % 10000000)::text, 7, '0') as phone,
       now() - pg_temp.u(n, 3) * interval '5 years' as created_at
  from generate_series(1, :people) n
  join bench_first_names f on f.i = floor((select count(*) from bench_first_names) * power(pg_temp.u(n, 1), 1.5))::int
  join bench_last_names l on l.i = floor((select count(*) from bench_last_names) * power(pg_temp.u(n, 2), 1.3))::int;
insert into crm.people (id, first_name, last_name, primary_email, primary_phone_e164, created_at, updated_at)
select id, first_name, last_name, email, phone, created_at, created_at from bench_people order by n;
insert into crm.person_emails (person_id, email, is_primary, created_at)
select id, email, true, created_at from bench_people order by n;
insert into crm.person_phones (person_id, phone_e164, is_primary, created_at)
select id, phone, true, created_at from bench_people order by n;

-- Clients: every (people / big_clients)-th person of the big
-- organization, the others of the other organizations in turn.
create temporary table bench_other_orgs on commit drop as
select (row_number() over (order by id) - 1)::int as k, id from tenancy.organizations where id <> :'big';
insert into crm.org_clients (organization_id, id, person_id, status, first_name, last_name, email, phone_e164, search_name, search_contact,
                             created_at, updated_at)
select case when p.n % (:people / :big_clients) = 0 then :'big'::uuid else o.id end,
       md5('crm-bench-client-' || p.n)::uuid, p.id,
       case when pg_temp.u(p.n, 4) < 0.60 then 'active' when pg_temp.u(p.n, 4) < 0.85 then 'lead' else 'inactive' end,
       p.first_name, p.last_name, p.email, p.phone,
       private.crm_search_name(p.first_name, p.last_name), private.crm_search_contact(p.email, p.phone),
       p.created_at + interval '1 day', p.created_at + interval '1 day'
  from bench_people p
  join bench_other_orgs o on o.k = p.n % (select count(*) from bench_other_orgs)
 order by p.n;

set local session_replication_role = origin;

-- The timeline client: a client of the big organization in the middle of
-- the table (person people / 2), with 1,000 events (400 jobs, 250
-- invoices, 250 payments, 100 notes at events = 1000), interleaved over
-- the last three years.
select md5('crm-bench-client-' || (:people / 2 / (:people / :big_clients) * (:people / :big_clients)))::uuid as client \gset
insert into crm.services (organization_id, id, name, default_price_cents)
values (:'big', md5('crm-bench-service-1')::uuid, 'Lawn mowing', 4500),
       (:'big', md5('crm-bench-service-2')::uuid, 'AC repair', 15000),
       (:'big', md5('crm-bench-service-3')::uuid, 'Gutter cleaning', 9000);
insert into crm.jobs (organization_id, org_client_id, service_id, start_at, end_at, status, price_cents, notes, created_at)
select :'big', :'client', md5('crm-bench-service-' || (1 + j % 3))::uuid,
       t + case when j > n - 5 then interval '30 days' else interval '3 days' end,
       t + case when j > n - 5 then interval '30 days 2 hours' else interval '3 days 2 hours' end,
       case when j > n - 5 then 'scheduled' else 'completed' end,
       (array[4500, 15000, 9000])[1 + j % 3], case when j % 4 = 0 then 'Gate code 1234, dog in the yard' end, t
  from (select :events * 4 / 10 as n) c
  cross join generate_series(1, c.n) j
  cross join lateral (select now() - interval '1100 days' + j * (interval '1090 days' / c.n) + interval '17 minutes' as t) x;
insert into crm.invoices (organization_id, id, org_client_id, currency, notes, created_at)
select :'big', md5('crm-bench-invoice-' || i)::uuid, :'client', 'USD', 'Thank you for your business',
       now() - interval '1100 days' + i * (interval '1080 days' / (:events / 4)) + interval '3 hours 5 minutes'
  from generate_series(1, :events / 4) i;
insert into crm.invoice_lines (organization_id, invoice_id, description, quantity, unit_price_cents, service_id)
select :'big', md5('crm-bench-invoice-' || i)::uuid, s.name, 1 + (i + k) % 2, s.default_price_cents, s.id
  from generate_series(1, :events / 4) i
  cross join generate_series(1, 1 + i % 2) k
  join crm.services s on s.organization_id = :'big' and s.id = md5('crm-bench-service-' || (1 + (i + k) % 3))::uuid;
update crm.invoices set status = 'open', due_date = (created_at + interval '30 days')::date
 where organization_id = :'big' and org_client_id = :'client';
insert into crm.payments (organization_id, invoice_id, currency, amount_cents, status, method, provider_payment_id, captured_at, created_at)
select i.organization_id, i.id, i.currency, i.total_cents, 'succeeded', 'card', 'pi_bench_' || i.id, i.created_at + interval '5 days', i.created_at + interval '5 days'
  from crm.invoices i where i.organization_id = :'big' and i.org_client_id = :'client';
update crm.org_clients oc
   set notes = (select jsonb_agg(jsonb_build_object('text', format('Called about visit %s; prefers mornings', k),
                                                    'created_at', now() - interval '1100 days' + k * (interval '1090 days' / (:events / 10)) + interval '7 hours 11 minutes')
                                 order by k)
                  from generate_series(1, :events / 10) k)
 where oc.organization_id = :'big' and oc.id = :'client';

-- What the triggers would have written, written. (Analyzed first: without
-- statistics the planner may join a million rows by nested loops.)
analyze crm.people, crm.person_emails, crm.person_phones, crm.org_clients;
do $check$
begin
  if exists (select from crm.people p left join crm.person_emails e on e.person_id = p.id and e.is_primary
                                      left join crm.person_phones f on f.person_id = p.id and f.is_primary
              where e.email is distinct from p.primary_email or f.phone_e164 is distinct from p.primary_phone_e164) then
    raise exception 'people.primary_email / primary_phone_e164 differ from their primary rows';
  end if;
  if exists (select from crm.org_clients oc
              where (oc.search_name, oc.search_contact)
                    <> (private.crm_search_name(oc.first_name, oc.last_name), private.crm_search_contact(oc.email, oc.phone_e164))) then
    raise exception 'org_clients.search_name / search_contact differ from private.crm_search_name / crm_search_contact';
  end if;
end
$check$;
commit;
vacuum analyze crm.people, crm.person_emails, crm.person_phones, crm.org_clients, crm.services, crm.jobs, crm.invoices,
               crm.invoice_lines, crm.payments, crm.reminders, tenancy.organizations, tenancy.memberships, private.tenant_access;
