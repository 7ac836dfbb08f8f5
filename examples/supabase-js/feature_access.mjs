// Check a feature gate before the user does something the plan limits.
// Answers { plan, feature, limit, used, remaining, unlimited, allowed,
// overage_unit_price } for the current billing period (limit -1: unlimited);
// `allowed` means the next unit may be used. A user may only ask for
// themself (42501 otherwise), in an organization they belong to.
import { supabase } from './client.mjs'

export async function checkFeatureAccess(organizationId, featureKey) {
  const { data: { user } } = await supabase.auth.getUser()
  const { data, error } = await supabase.rpc('check_feature_access', {
    p_user_id: user.id,
    p_feature_key: featureKey, // e.g. 'max_api_calls_per_month', 'max_projects', 'max_seats'
    p_organization_id: organizationId,
  })
  if (error) throw error
  return data
}

// const access = await checkFeatureAccess(orgId, 'max_api_calls_per_month')
// if (!access.allowed) showUpgradeDialog(access)
