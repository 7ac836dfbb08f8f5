-- The catalog can take a signup: an active plan 'free' exists (every new
-- organization starts on it; without it signups get no subscription and
-- check_feature_access answers P0002). `tenantdb seed` loads it.
select 'catalog' as check, 'catalog.plans' as object,
       'no active plan ''free'': new organizations get no subscription; run tenantdb seed (or load a catalog with a free plan)' as detail
 where not exists (select from catalog.plans p where p.key = 'free' and p.is_active)
