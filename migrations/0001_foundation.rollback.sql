drop schema if exists private cascade;
drop schema if exists iam cascade;
drop schema if exists tenancy cascade;
drop schema if exists identity cascade;
{% if api != 'public' %}
drop schema if exists {{ api }} cascade;
{% endif %}
{% if target == 'postgres' %}
-- The auth shim goes only if tenantdb created it; the roles are cluster-wide
-- and stay.
do $shim$
begin
  if pg_catalog.obj_description('auth'::regnamespace, 'pg_namespace') like 'tenantdb shim%' then
    drop schema auth cascade;
  end if;
end
$shim$;
{% endif %}
