// The two clients the examples use.
//
// `supabase`: the anon key; after sign-in its requests carry the user's JWT,
// so PostgREST runs them as role `authenticated` with the user's claims and
// every policy and API function sees that user.
//
// `supabaseAdmin`: the service role key — server side only (your back end,
// an edge function, a worker); never ship this key to a browser or an app.
// PostgREST runs its requests as role `service_role`, which tenantdb trusts
// for back-end calls (ingest_payment_event, record_usage, invoices).
//
// The API schema is `public` (tenantdb's default). If the database was
// migrated with `tenantdb --api-schema api …`, expose `api` in PostgREST
// (`db-schemas`; Supabase: Settings → API → Exposed schemas) and pass
// `{ db: { schema: 'api' } }` to createClient.
import { createClient } from '@supabase/supabase-js'

const url = process.env.SUPABASE_URL

export const supabase = createClient(url, process.env.SUPABASE_ANON_KEY)

export const supabaseAdmin = createClient(url, process.env.SUPABASE_SERVICE_ROLE_KEY, {
  auth: { persistSession: false, autoRefreshToken: false },
})
