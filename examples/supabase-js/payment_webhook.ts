// A Supabase edge function (Deno) receiving the payment provider's webhook:
// supabase/functions/payment-webhook/index.ts, deployed with
// `supabase functions deploy payment-webhook --no-verify-jwt` (the provider
// signs its requests; it has no Supabase JWT).
//
// It verifies the signature, maps the provider's event to one of tenantdb's
// normalized types and stores it with the service role key. Storing is
// idempotent per (provider, provider_event_id): a redelivery answers
// duplicate = true and writes nothing, so answer 200 either way. Applying
// the event is a worker's job (payment_worker.ts), not the webhook's.
//
// Deploy database.types.ts beside it (e.g. supabase/functions/_shared/) and
// import it from there: the rpc call below is then type-checked as well.
import Stripe from 'npm:stripe@14'
import { createClient } from 'npm:@supabase/supabase-js@2'
import type { Database, Json } from './database.types.ts'

const stripe = new Stripe(Deno.env.get('STRIPE_SECRET_KEY')!)
const supabaseAdmin = createClient<Database>(Deno.env.get('SUPABASE_URL')!, Deno.env.get('SUPABASE_SERVICE_ROLE_KEY')!)

// p_payload is jsonb: Json in the generated types.
type Payload = { [key: string]: Json | undefined }

// tenantdb understands subscription.updated and payment.succeeded|failed|refunded
// (README, "Payment-event inbox"); it stores others too and marks them skipped.
function normalize(event: Stripe.Event): { type: string; payload: Payload } {
  if (event.type === 'customer.subscription.updated') {
    const sub = event.data.object as Stripe.Subscription
    return {
      type: 'subscription.updated',
      payload: {
        organization_id: sub.metadata.organization_id, // set when you created the checkout session
        plan_key: sub.items.data[0]?.price.lookup_key, // e.g. 'pro'
        status: sub.status,
        current_period_start: new Date(sub.current_period_start * 1000).toISOString(),
        current_period_end: new Date(sub.current_period_end * 1000).toISOString(),
        provider_subscription_id: sub.id,
        seats: sub.items.data[0]?.quantity,
      },
    }
  }
  return { type: event.type, payload: event.data.object as unknown as Payload }
}

Deno.serve(async (req) => {
  let event: Stripe.Event
  try {
    event = await stripe.webhooks.constructEventAsync(
      await req.text(),
      req.headers.get('stripe-signature')!,
      Deno.env.get('STRIPE_WEBHOOK_SECRET')!,
      undefined,
      Stripe.createSubtleCryptoProvider(),
    )
  } catch {
    return new Response('bad signature', { status: 400 })
  }
  const normalized = normalize(event)
  const { data, error } = await supabaseAdmin
    .rpc('ingest_payment_event', {
      p_provider: 'stripe',
      p_provider_event_id: event.id,
      p_event_type: normalized.type,
      p_payload: normalized.payload,
      p_occurred_at: new Date(event.created * 1000).toISOString(),
    })
    .single() // returns table (event_id, duplicate): one row
  if (error) return new Response(error.message, { status: 500 }) // the provider retries
  return Response.json({ received: true, event_id: data.event_id, duplicate: data.duplicate })
})
