export * from "./accounts";
export { API_KEY_PREFIX } from "./api-key-format";
export { Authenticator, type Principal } from "./authenticator";
export { InvalidTokenError, type JwtSettings, JwtVerifier } from "./jwt";
export { type SupabaseAuth, supabaseAuth } from "./supabase";
export { UserChanges } from "./user-changes";
