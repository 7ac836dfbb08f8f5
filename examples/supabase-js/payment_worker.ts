// Apply stored payment events (a cron job or worker; service role key).
// process_payment_events claims pending events (SKIP LOCKED, a lease) and
// applies them; failures are recorded and retried up to 10 attempts.
// For bigger batches: claim_payment_events, then handle_payment_event per
// event, each in its own request.
import { supabaseAdmin } from './client.ts'

export async function processPaymentEvents(worker = 'payment-worker') {
  const { data, error } = await supabaseAdmin.rpc('process_payment_events', {
    p_worker: worker,
    p_max_events: 100,
  })
  if (error) throw error
  return data // [{ event_id, outcome: 'processed' | 'skipped' | 'failed', error }]
}
