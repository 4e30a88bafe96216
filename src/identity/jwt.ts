import { createRemoteJWKSet, decodeProtectedHeader, type JWTPayload, jwtVerify } from "jose";
import type { SupabaseAuth } from "./supabase";

export interface JwtSettings {
  /** Supabase project URL: issuer is `<url>/auth/v1`, keys come from `<url>/auth/v1/.well-known/jwks.json`. */
  supabaseUrl?: string;
  /** Legacy symmetric secret (HS256). */
  jwtSecret?: string;
  /** remote: also ask Supabase Auth (`getUser`) so sessions revoked there stop working. */
  verify: "local" | "remote";
}

export interface VerifiedIdentity {
  userId: string;
  email: string | null;
  /** Seconds since the epoch. */
  expiresAt: number;
}

export class InvalidTokenError extends Error {}

const ASYMMETRIC_ALGORITHMS = ["ES256", "RS256", "EdDSA"];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Verifies Supabase Auth access tokens locally with jose: the algorithm decides the key (HS256 only with the
 * shared secret, asymmetric algorithms only with the project's JWKS), so `alg: none` and HS256-signed-with-the-
 * public-key confusion have no key to verify against. Issuer, audience `authenticated` and expiry are checked.
 */
export class JwtVerifier {
  private readonly secret?: Uint8Array;
  private readonly jwks?: ReturnType<typeof createRemoteJWKSet>;
  private readonly issuer?: string;

  constructor(
    private readonly settings: JwtSettings,
    private readonly supabaseAuth?: SupabaseAuth,
  ) {
    if (settings.jwtSecret) this.secret = new TextEncoder().encode(settings.jwtSecret);
    if (settings.supabaseUrl) {
      const base = settings.supabaseUrl.replace(/\/+$/, "");
      this.issuer = `${base}/auth/v1`;
      // Cached by jose; refetched at most every 30 s when an unknown key id appears (signing-key rotation).
      this.jwks = createRemoteJWKSet(new URL(`${base}/auth/v1/.well-known/jwks.json`), {
        cacheMaxAge: 10 * 60_000,
        cooldownDuration: 30_000,
        timeoutDuration: 5_000,
      });
    }
  }

  get enabled(): boolean {
    return Boolean(this.secret || this.jwks);
  }

  async verify(token: string): Promise<VerifiedIdentity> {
    const payload = await this.verifyLocally(token);
    if (this.settings.verify === "remote") await this.verifyWithSupabase(token, payload);
    const sub = payload.sub;
    if (!sub || !UUID.test(sub)) throw new InvalidTokenError("token subject is not a user id");
    if (payload.role !== undefined && payload.role !== "authenticated") throw new InvalidTokenError("token role");
    return {
      userId: sub,
      email: typeof payload.email === "string" && payload.email ? payload.email : null,
      expiresAt: payload.exp ?? 0,
    };
  }

  private async verifyLocally(token: string): Promise<JWTPayload> {
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw new InvalidTokenError("not a JWT");
    }
    const options = { issuer: this.issuer, audience: "authenticated", requiredClaims: ["exp", "sub"] };
    try {
      if (alg === "HS256" && this.secret) {
        return (await jwtVerify(token, this.secret, { ...options, algorithms: ["HS256"] })).payload;
      }
      if (alg && ASYMMETRIC_ALGORITHMS.includes(alg) && this.jwks) {
        return (await jwtVerify(token, this.jwks, { ...options, algorithms: ASYMMETRIC_ALGORITHMS })).payload;
      }
    } catch (error) {
      throw new InvalidTokenError(`JWT rejected: ${(error as { code?: string }).code ?? "invalid"}`);
    }
    throw new InvalidTokenError("JWT algorithm not accepted");
  }

  private async verifyWithSupabase(token: string, payload: JWTPayload): Promise<void> {
    if (!this.supabaseAuth) throw new InvalidTokenError("remote verification is not configured");
    const { data, error } = await this.supabaseAuth.getUser(token);
    if (error || !data.user || data.user.id !== payload.sub)
      throw new InvalidTokenError("session not valid at Supabase");
  }
}
