// Check a feature gate before the user does something the plan limits.
// Answers { plan, feature, limit, used, remaining, unlimited, allowed,
// overage_unit_price } for the current billing period (limit -1: unlimited);
// `allowed` means the next unit may be used. A user may only ask for
// themself (42501 otherwise), in an organization they belong to.
import type { Json } from './database.types.ts'
import { supabase } from './client.ts'

// check_feature_access returns jsonb (Json in the generated types): this is
// its shape. A feature without a limit (a flag) answers plan, feature,
// flags and allowed only.
export type FeatureAccess = {
  plan: string
  feature: string
  allowed: boolean
  limit?: number // -1: unlimited
  used?: number
  remaining?: number | null // null when unlimited
  unlimited?: boolean
  overage_unit_price?: number | null // minor units per unit past the limit; null: no overage
  flags?: Json
}

export async function checkFeatureAccess(organizationId: string, featureKey: string): Promise<FeatureAccess> {
  const { data: { user } } = await supabase.auth.getUser()
  if (!user) throw new Error('sign in first')
  const { data, error } = await supabase.rpc('check_feature_access', {
    p_user_id: user.id,
    p_feature_key: featureKey, // e.g. 'max_api_calls_per_month', 'max_projects', 'max_seats'
    p_organization_id: organizationId,
  })
  if (error) throw error
  return data as FeatureAccess
}

// const access = await checkFeatureAccess(orgId, 'max_api_calls_per_month')
// if (!access.allowed) showUpgradeDialog(access)
