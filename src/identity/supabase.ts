import { createClient, type SupabaseClient } from "@supabase/supabase-js";

/** Supabase Auth as supabase-js exposes it: `getUser` with the anon key, `admin.*` with the service-role key. */
export type SupabaseAuth = SupabaseClient["auth"];

/**
 * Supabase's official client for a server: no session kept, refreshed or read from a URL (each call carries the
 * token it is about). Only its `auth` part is used; local JWT verification stays with jose (identity/jwt.ts).
 */
export function supabaseAuth(url: string, key: string): SupabaseAuth {
  return createClient(url, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  }).auth;
}
