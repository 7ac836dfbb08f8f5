-- limits: readable by every signed-in user (clients may show them);
-- written by the service role only.
{% import 'sql/macros.sql' as m with context %}
{{ m.catalog_policies('catalog.limits') }}
