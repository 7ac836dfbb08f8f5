-- catalog: reference data every signed-in user may read.
{% import 'sql/macros.sql' as m with context %}
{{ m.catalog_policies('catalog.meters') }}
{{ m.catalog_policies('catalog.features') }}
{{ m.catalog_policies('catalog.plans') }}
{{ m.catalog_policies('catalog.plan_features') }}
