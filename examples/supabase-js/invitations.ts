// Invite a member, and accept the invitation.
//
// The inviter needs `member.invite` (owners, admins) and every permission of
// the role they hand out. The token is returned once (only its sha256 is
// stored): put it in the invitation link you email. The invitee signs in
// with the invited address and accepts; that makes the membership.
import { supabase } from './client.ts'

// As the inviter.
export async function inviteMember(
  organizationId: string,
  email: string,
  roleKey = 'tenant_member', // tenant_admin | tenant_member | tenant_guest
): Promise<{ invitationId: string; token: string }> {
  const { data, error } = await supabase
    .rpc('invite_member', {
      p_organization_id: organizationId,
      p_email: email,
      p_role_key: roleKey,
    })
    .single() // returns table (invitation_id, token): one row
  if (error) throw error
  // (the types say a returned column may be null: a function's row is not
  // checked column by column; invite_member always fills both)
  if (data.invitation_id === null || data.token === null) throw new Error('invite_member returned no invitation')
  return { invitationId: data.invitation_id, token: data.token }
}

// As the invitee, signed in with the invited email (e.g. on the page the
// invitation link opens): 42501 for another address, 55000 for an expired,
// revoked or used invitation, P0002 for an unknown token.
export async function acceptInvitation(token: string): Promise<string> {
  const { data: organizationId, error } = await supabase.rpc('accept_invitation', { p_token: token })
  if (error) throw error
  return organizationId
}
