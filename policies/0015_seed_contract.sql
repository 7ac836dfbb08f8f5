-- The public catalog for anon (seed 001: a pricing page reads plans and their
-- features with the anon key): active plans that are not custom, their
-- features, and the features they name. Nothing else is granted to anon.
{% import 'sql/macros.sql' as m with context %}
{{ m.policy('catalog.plans', 'anon_public_plans', 'select', using='is_active and not is_custom', role='anon') }}
{{ m.policy('catalog.plan_features', 'anon_public_plan_features', 'select',
            using='plan_key in (select p.key from catalog.plans p where p.is_active and not p.is_custom)', role='anon') }}
{{ m.policy('catalog.features', 'anon_public_features', 'select',
            using='key in (select pf.feature_key from catalog.plan_features pf join catalog.plans p on p.key = pf.plan_key where p.is_active and not p.is_custom)', role='anon') }}
{{ m.catalog_policies('catalog.meter_aliases') }}
