// Record usage, once per idempotency key.
//
// Usually the back end meters usage with the service role key
// (supabaseAdmin). A member whose role holds `usage.record` (owners, admins,
// members; not guests) may record for their own organization with their own
// session. Either way a retry with the same key writes nothing and answers
// { event_id, duplicate: true } — so retry freely.
import { supabase, supabaseAdmin } from './client.ts'

// In the back end (service role key).
export async function recordUsage(organizationId: string, meterKey: string, quantity: number, idempotencyKey: string) {
  const { data, error } = await supabaseAdmin
    .rpc('record_usage', {
      p_organization_id: organizationId,
      p_meter_key: meterKey, // a meter ('api_call'), an alias ('api_calls') or a feature key ('max_records')
      p_quantity: quantity,
      p_idempotency_key: idempotencyKey, // e.g. the id of the request being metered
    })
    .single()
  if (error) throw error
  return data // { event_id, duplicate }
}

// As a signed-in member with usage.record.
export async function recordUsageAsMember(organizationId: string, meterKey: string, quantity: number, idempotencyKey: string) {
  const { data, error } = await supabase
    .rpc('record_usage', {
      p_organization_id: organizationId,
      p_meter_key: meterKey,
      p_quantity: quantity,
      p_idempotency_key: idempotencyKey,
    })
    .single()
  if (error) throw error
  return data
}
