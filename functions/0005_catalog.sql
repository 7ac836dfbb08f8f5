-- catalog: the triggers of the catalog tables.
{% import 'sql/macros.sql' as m with context %}

-- (private.load_catalog lives in functions/0015_seed_contract.sql: it loads
-- meter aliases and rebuilds organization_usage_summary, both of 0015.)

{{ m.updated_at('catalog.plans') }}
