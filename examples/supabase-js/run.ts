// Run the examples in order against a Supabase API (PostgREST and Auth):
//   SUPABASE_URL=… SUPABASE_ANON_KEY=… SUPABASE_SERVICE_ROLE_KEY=… node run.ts
// (README.md beside this file: what the database and the API need). It
// signs up two users, so sign-up must hand out a session (email
// confirmation off, as `supabase start` has it). The last line is a JSON
// summary; each run uses new users and slugs.
import { randomUUID } from 'node:crypto'
import { supabase, supabaseAdmin } from './client.ts'
import { createOrganization } from './create_organization.ts'
import { checkFeatureAccess } from './feature_access.ts'
import { acceptInvitation, inviteMember } from './invitations.ts'
import { listInvoices } from './invoices.ts'
import { processPaymentEvents } from './payment_worker.ts'
import { recordUsage } from './record_usage.ts'

const run = randomUUID().slice(0, 8)

async function signUp(email: string): Promise<string> {
  await supabase.auth.signOut()
  const { data, error } = await supabase.auth.signUp({ email, password: `pw-${randomUUID()}` })
  if (error) throw error
  if (!data.session || !data.user) throw new Error('sign-up gave no session: turn off email confirmation')
  return data.user.id
}

const owner = await signUp(`owner-${run}@example.com`)
const organizationId = await createOrganization(`Acme ${run}`, `acme-${run}`)
const access = await checkFeatureAccess(organizationId, 'max_api_calls_per_month')
const key = `run:${randomUUID()}`
const usage = [await recordUsage(organizationId, 'api_call', 5, key), await recordUsage(organizationId, 'api_call', 5, key)]
// The free plan's one seat is the owner's: an invitation past a plan's seats
// is refused (54000) where the plan bills no seat overage. The back end moves
// the organization to a plan with seats first — in an app, the payment
// provider's subscription.updated (payment_webhook.ts, payment_worker.ts).
const upgraded = await supabaseAdmin.rpc('change_subscription_plan', {
  p_organization_id: organizationId,
  p_plan_key: 'pro',
})
if (upgraded.error) throw upgraded.error
const teammate = `teammate-${run}@example.com`
const { token } = await inviteMember(organizationId, teammate)
let invoices: unknown
try {
  invoices = await listInvoices(organizationId)
} catch (error) {
  invoices = `not listed: ${(error as Error).message} (expose the billing schema)`
}
const processed = await processPaymentEvents(`run-${run}`)
const member = await signUp(teammate)
const joined = await acceptInvitation(token)
await supabase.auth.signOut()
console.log(JSON.stringify({ organizationId, owner, member, joined, access, usage, invoices, processed }))
