-- After the catalog is loaded: organizations made before it (or before
-- billing was installed) start on the free plan. Idempotent.
select private.start_missing_free_subscriptions();
