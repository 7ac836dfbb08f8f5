// The two clients the examples use, typed by database.types.ts (made by
// `tenantdb types typescript`): `tsc` checks every function call and table
// read of the examples against the database's functions and columns.
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
// (`db-schemas`; Supabase: Settings → API → Exposed schemas) and create the
// clients with `createClient<Database, 'api'>(url, key, { db: { schema: 'api' } })`
// (`tenantdb types typescript` reads the API schema the database was
// migrated with).
import { createClient } from '@supabase/supabase-js'
import type { Database } from './database.types.ts'

function env(name: string): string {
  const value = process.env[name]
  if (!value) throw new Error(`set ${name} (README.md beside this file)`)
  return value
}

const url = env('SUPABASE_URL')

export const supabase = createClient<Database>(url, env('SUPABASE_ANON_KEY'))

export const supabaseAdmin = createClient<Database>(url, env('SUPABASE_SERVICE_ROLE_KEY'), {
  auth: { persistSession: false, autoRefreshToken: false },
})
