// For tsc only (Deno provides these in a Supabase edge function; this file
// is not deployed): the part of Deno's runtime API payment_webhook.ts uses,
// and its npm: imports as the packages installed here.
declare namespace Deno {
  export const env: { get(name: string): string | undefined }
  export function serve(handler: (request: Request) => Response | Promise<Response>): unknown
}

declare module 'npm:@supabase/supabase-js@2' {
  export * from '@supabase/supabase-js'
}

declare module 'npm:stripe@14' {
  import Stripe from 'stripe'
  export default Stripe
}
