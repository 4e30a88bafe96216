import { hash } from "node:crypto";
import { LRUCache } from "lru-cache";
import { RefreshingCache } from "../cache/refreshing-cache";
import type { Tiers } from "../config";
import type { Database } from "../db";
import { AuthenticationError, PermissionDeniedError } from "../errors";
import type { Logger } from "../log";
import { findStanding, provisionUser, STANDING_COLUMNS, type StandingRow, type UserSettings } from "./accounts";
import { hashApiKey, isWellFormedApiKey, looksLikeApiKey } from "./api-key-format";
import { InvalidTokenError, type JwtVerifier } from "./jwt";

/** Who is calling, as every later pipeline step needs it. Holds no secret. */
export interface Principal {
  userId: string;
  email: string | null;
  tier: string;
  via: "api_key" | "jwt";
  apiKeyId: string | null;
  /** Per-key overrides of the tier's request limits (null: the tier decides). */
  keyLimits: { requestsPerMinute: number | null; requestsPerDay: number | null };
  /** As of the (cached) lookup: cost this calendar month and prepaid balance, for spend caps. */
  spend: { monthUsd: number; balanceUsd: number };
  /** The user's own settings (PATCH /v1/me/settings), as of the (cached) lookup. */
  settings?: UserSettings;
}

// One message for unknown, revoked, expired and malformed credentials: nothing to tell them apart.
const invalidCredentials = () =>
  new AuthenticationError(
    "Incorrect API key provided. Use a Perpetual API key (sk-perp-…) or a valid Supabase access token.",
  );
const missingCredentials = () =>
  new AuthenticationError(
    "You didn't provide an API key. Send it in the Authorization header: Authorization: Bearer sk-perp-…",
  );
const accountDisabled = () =>
  new PermissionDeniedError("This account is disabled. Contact the operator of this service.", {
    code: "account_disabled",
  });

type Resolved = { principal: Principal } | { failure: "invalid" | "disabled" };

export interface AuthenticatorOptions {
  db: Database;
  tiers: Tiers;
  jwt?: JwtVerifier;
  logger: Logger;
  /** How long a lookup is reused in this process (then refreshed in the background while still served for as long
   * again). Without Redis, bounds how late a revocation made on another replica takes effect (twice this). */
  cacheTtlMs: number;
  now?: () => number;
}

const MAX_CACHE_ENTRIES = 50_000;
const LAST_USED_INTERVAL_MS = 60_000;

/**
 * Turns an Authorization header into a Principal. Lookups (hash → key row, JWT → user row) are cached so the hot
 * path makes no database round trip, single-flight (a burst of requests with one credential makes one query, also
 * when its entry expires) and refreshed in the background while the previous answer is served; unknown and
 * malformed credentials are cached too, so repeating one does not reach the database. A revocation made on this
 * replica evicts at once, one made elsewhere is announced over Redis or honoured when the entry ages out.
 */
export class Authenticator {
  private readonly cache: RefreshingCache<Resolved>;
  private readonly lastUsedWritten = new LRUCache<string, number>({ max: MAX_CACHE_ENTRIES });
  private readonly now: () => number;

  constructor(private readonly options: AuthenticatorOptions) {
    this.now = options.now ?? Date.now;
    const ttlMs = options.cacheTtlMs;
    this.cache = new RefreshingCache({ max: MAX_CACHE_ENTRIES, ttlMs, staleMs: ttlMs, now: this.now });
  }

  async authenticate(authorization: string | undefined): Promise<Principal> {
    const token = bearerToken(authorization);
    if (!token) throw missingCredentials();
    const cacheKey = hash("sha256", token, "base64url"); // one-shot: no Hash object per request
    const resolved = await this.cache.get(cacheKey, async () => {
      const { resolved, validUntil } = await this.resolve(token);
      return { value: resolved, validUntil };
    });
    if ("failure" in resolved) throw resolved.failure === "disabled" ? accountDisabled() : invalidCredentials();
    const { principal } = resolved;
    if (principal.apiKeyId) this.touch(principal.apiKeyId, this.now());
    return principal;
  }

  /** Drops cached lookups for a user (after revoking keys, disabling, changing tier or deleting the account). */
  forgetUser(userId: string): void {
    this.cache.deleteWhere((resolved) => "principal" in resolved && resolved.principal.userId === userId);
  }

  private async resolve(token: string): Promise<{ resolved: Resolved; validUntil: number }> {
    if (looksLikeApiKey(token)) return this.resolveApiKey(token);
    if (this.options.jwt?.enabled && token.split(".").length === 3) return this.resolveJwt(token);
    return { resolved: { failure: "invalid" }, validUntil: Number.POSITIVE_INFINITY };
  }

  private async resolveApiKey(token: string): Promise<{ resolved: Resolved; validUntil: number }> {
    const never = Number.POSITIVE_INFINITY;
    if (!isWellFormedApiKey(token)) return { resolved: { failure: "invalid" }, validUntil: never };
    const rows = await this.options.db.query<
      StandingRow & {
        id: string;
        user_id: string;
        email: string | null;
        key_tier: string | null;
        user_active: boolean;
        expires_at: Date | null;
        rate_limit_per_minute: number | null;
        rate_limit_per_day: number | null;
      }
    >(
      `select k.id, k.user_id, u.email, k.tier as key_tier, u.is_active as user_active,
              k.expires_at, k.rate_limit_per_minute, k.rate_limit_per_day, ${STANDING_COLUMNS}
         from api_keys k join users u on u.id = k.user_id
        where k.key_hash = $1 and k.is_active and (k.expires_at is null or k.expires_at > now())`,
      [hashApiKey(token)],
    );
    const row = rows[0];
    if (!row) return { resolved: { failure: "invalid" }, validUntil: never };
    const validUntil = Math.min(row.expires_at ? row.expires_at.getTime() : never, lapse(row));
    if (!row.user_active) return { resolved: { failure: "disabled" }, validUntil };
    const principal: Principal = {
      userId: row.user_id,
      email: row.email,
      tier: this.knownTier(row.key_tier ?? row.tier_in_force),
      via: "api_key",
      apiKeyId: row.id,
      keyLimits: { requestsPerMinute: row.rate_limit_per_minute, requestsPerDay: row.rate_limit_per_day },
      spend: spendOf(row),
      settings: { responseCache: row.response_cache, memoryMode: row.memory_mode },
    };
    return { resolved: { principal }, validUntil };
  }

  private async resolveJwt(token: string): Promise<{ resolved: Resolved; validUntil: number }> {
    let identity: Awaited<ReturnType<JwtVerifier["verify"]>>;
    try {
      identity = await this.options.jwt!.verify(token);
    } catch (error) {
      if (!(error instanceof InvalidTokenError)) throw error;
      this.options.logger.debug("jwt rejected", { reason: error.message });
      return { resolved: { failure: "invalid" }, validUntil: Number.POSITIVE_INFINITY };
    }
    const { db, tiers } = this.options;
    const user = await provisionUser(db, identity.userId, identity.email, tiers.defaultTier);
    if (!user.isActive) return { resolved: { failure: "disabled" }, validUntil: identity.expiresAt * 1000 };
    const standing = await findStanding(db, user.id);
    if (!standing) return { resolved: { failure: "invalid" }, validUntil: Number.POSITIVE_INFINITY };
    const principal: Principal = {
      userId: user.id,
      email: user.email,
      tier: this.knownTier(standing.tier_in_force),
      via: "jwt",
      apiKeyId: null,
      keyLimits: { requestsPerMinute: null, requestsPerDay: null },
      spend: spendOf(standing),
      settings: { responseCache: standing.response_cache, memoryMode: standing.memory_mode },
    };
    return { resolved: { principal }, validUntil: Math.min(identity.expiresAt * 1000, lapse(standing)) };
  }

  /** A tier removed from config falls back to the default rather than locking users out. */
  private knownTier(tier: string): string {
    return this.options.tiers.byName.has(tier) ? tier : this.options.tiers.defaultTier;
  }

  /** Updates last_used at most once a minute per key per process, off the request path. */
  private touch(apiKeyId: string, now: number): void {
    if (now - (this.lastUsedWritten.get(apiKeyId) ?? 0) < LAST_USED_INTERVAL_MS) return;
    this.lastUsedWritten.set(apiKeyId, now);
    setImmediate(() => {
      this.options.db
        .query("update api_keys set last_used = now() where id = $1", [apiKeyId])
        .catch((error: unknown) =>
          this.options.logger.warn("could not record last_used", { api_key_id: apiKeyId, error }),
        );
    });
  }
}

/** A cached lookup must not outlive the subscription tier it saw. */
const lapse = (standing: StandingRow) => standing.tier_until?.getTime() ?? Number.POSITIVE_INFINITY;

const spendOf = (standing: StandingRow) => ({
  monthUsd: Number(standing.month_spend_usd),
  balanceUsd: Number(standing.balance_usd),
});

function bearerToken(header: string | undefined): string | undefined {
  const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  return match?.[1];
}
