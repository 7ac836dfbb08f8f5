// Create an organization; the signed-in user becomes its tenant_owner.
// Refusals come back as `error` with Postgres's SQLSTATE in `error.code`:
// 23505 a taken slug, 42501 signed out, 22023 a bad name, slug or type.
import { supabase } from './client.ts'

export async function createOrganization(name: string, slug: string): Promise<string> {
  const { data: organizationId, error } = await supabase.rpc('create_organization', {
    p_name: name,
    p_slug: slug,
  })
  if (error) throw error
  return organizationId // uuid
}

// const orgId = await createOrganization('Acme', 'acme')
