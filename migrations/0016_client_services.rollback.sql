-- tenantdb drops the functions of functions/0016_client_services.sql first
-- (with the triggers and views that use them); this drops the rest of what
-- 0016 made, and refuses (2BP01) if something of someone else's lives in
-- or depends on the schema.
drop view if exists client_services.transactions, client_services.billing_records, client_services.usage_logs,
  client_services.accounts, client_services.organizations;
drop schema if exists client_services;
