// Invoices: the back end makes them, members with `billing.view` (owners,
// admins) read them.
//
// Listing reads the table billing.invoices directly. tenantdb's API schema
// has no invoice view or function, so PostgREST must expose the `billing`
// schema too: `db-schemas = "public, billing"` (Supabase: Settings → API →
// Exposed schemas → add billing). Its grants and policies are already
// there: members read their organizations' rows, only with billing.view,
// and nobody writes through the API. The generated types hold `billing`
// (with what `authenticated` may read), so the columns below are checked.
import type { Tables } from './database.types.ts'
import { supabase, supabaseAdmin } from './client.ts'

// A row of the list. The declared return type is what makes tsc check the
// select string: a misspelt column there makes `data` a SelectQueryError.
export type Invoice = Pick<
  Tables<{ schema: 'billing' }, 'invoices'>,
  'id' | 'period_start' | 'period_end' | 'status' | 'currency' | 'total_minor' | 'finalized_at'
>

// As a signed-in member. Without billing.view the list is empty (RLS), not an error.
export async function listInvoices(organizationId: string): Promise<Invoice[]> {
  const { data, error } = await supabase
    .schema('billing')
    .from('invoices')
    .select('id, period_start, period_end, status, currency, total_minor, finalized_at')
    .eq('organization_id', organizationId)
    .order('period_start', { ascending: false })
  if (error) throw error
  return data // total_minor: minor units (cents) of `currency`; null while draft
}

// The billing job (service role key), at the start of each billing period,
// after renew_subscriptions: draft the period's invoice (idempotent per
// period) and finalize it (applies credit, stamps the total, opens it).
// periodStart: the first day of the organization's billing period
// ('YYYY-MM-DD', e.g. from billing.subscriptions.current_period_start).
export async function billPeriod(organizationId: string, periodStart: string): Promise<{ invoiceId: string; totalMinor: number }> {
  const { data: invoiceId, error } = await supabaseAdmin.rpc('generate_invoice', {
    p_organization_id: organizationId,
    p_period_start: periodStart,
  })
  if (error) throw error
  const { data: totalMinor, error: finalizeError } = await supabaseAdmin.rpc('finalize_invoice', {
    p_organization_id: organizationId,
    p_invoice_id: invoiceId,
  })
  if (finalizeError) throw finalizeError
  return { invoiceId, totalMinor }
}
