import { RefreshingCache } from "../cache/refreshing-cache";
import type { Database } from "../db";
import { InvalidRequestError } from "../errors";
import type { Vault } from "../vault";

export interface ProviderKeyView {
  provider: string;
  last4: string;
  createdAt: Date;
  updatedAt: Date;
}

type Row = { provider: string; key_last4: string; created_at: Date; updated_at: Date };
const toView = (r: Row): ProviderKeyView => ({
  provider: r.provider,
  last4: r.key_last4,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export const noProviderKey = (provider: string) =>
  new InvalidRequestError(`No API key found for provider ${provider}. Add one with POST /v1/provider-keys/add.`, {
    code: "provider_key_missing",
    param: "model",
    headers: { "x-should-retry": "false" },
  });

/**
 * Users' own provider keys: sealed by the vault, stored one row per user and provider, always read and written
 * as the user (RLS), so one user's request can never reach another's key.
 */
export class ProviderKeys {
  // Sealed values only (never plaintext), so a completion needs no database round trip for its key; one lookup
  // per user and provider however many requests miss at once.
  private readonly sealedCache: RefreshingCache<string | null>;

  constructor(
    private readonly db: Database,
    private readonly vault: Vault,
    private readonly providers: ReadonlySet<string>,
    /** How long a stored key is reused in-process (then refreshed in the background while still served for as
     * long again); a change made on another replica is seen within twice this. */
    cacheTtlMs = 5_000,
  ) {
    this.sealedCache = new RefreshingCache({ max: 100_000, ttlMs: cacheTtlMs, staleMs: cacheTtlMs });
  }

  assertKnownProvider(provider: string): void {
    if (!this.providers.has(provider)) {
      throw new InvalidRequestError(
        `Unknown provider "${provider}". Supported: ${[...this.providers].sort().join(", ")}.`,
        { code: "unknown_provider", param: "provider" },
      );
    }
  }

  /** Adds or replaces the user's key for that provider. */
  async add(userId: string, provider: string, apiKey: string): Promise<ProviderKeyView> {
    this.assertKnownProvider(provider);
    const sealed = this.vault.seal(userId, provider, apiKey);
    const rows = await this.db.asUser(userId, (tx) =>
      tx.query<Row>(
        `insert into user_provider_keys (user_id, provider, encrypted_key, key_last4) values ($1, $2, $3, $4)
         on conflict (user_id, provider) do update
           set encrypted_key = excluded.encrypted_key, key_last4 = excluded.key_last4, updated_at = now()
         returning provider, key_last4, created_at, updated_at`,
        [userId, provider, sealed, apiKey.slice(-4)],
      ),
    );
    this.sealedCache.delete(`${userId}/${provider}`);
    return toView(rows[0]!);
  }

  async list(userId: string): Promise<ProviderKeyView[]> {
    const rows = await this.db.asUser(userId, (tx) =>
      tx.query<Row>("select provider, key_last4, created_at, updated_at from user_provider_keys order by provider"),
    );
    return rows.map(toView);
  }

  /** True when a key was deleted. */
  async remove(userId: string, provider: string): Promise<boolean> {
    const rows = await this.db.asUser(userId, (tx) =>
      tx.query("delete from user_provider_keys where provider = $1 returning 1", [provider]),
    );
    this.sealedCache.delete(`${userId}/${provider}`);
    return rows.length > 0;
  }

  /** Drops cached keys of a user (account deleted). */
  forgetUser(userId: string): void {
    this.sealedCache.deleteWhere((_sealed, key) => key.startsWith(`${userId}/`));
  }

  /**
   * The user's key for a provider, still sealed (a missing key fails here: 400 provider_key_missing). `reveal`
   * opens it: call it at call time, so the plaintext lives only as long as the provider call.
   */
  async resolve(userId: string, provider: string): Promise<SealedProviderKey> {
    const sealed = await this.sealedCache.get(`${userId}/${provider}`, async () => {
      const rows = await this.db.asUser(userId, (tx) =>
        tx.query<{ encrypted_key: string }>("select encrypted_key from user_provider_keys where provider = $1", [
          provider,
        ]),
      );
      return { value: rows[0]?.encrypted_key ?? null };
    });
    if (!sealed) throw noProviderKey(provider);
    return { reveal: () => this.vault.open(userId, provider, sealed) };
  }

  /** The plaintext key, for the provider call and nothing else. */
  async reveal(userId: string, provider: string): Promise<string> {
    return (await this.resolve(userId, provider)).reveal();
  }
}

export interface SealedProviderKey {
  /** Decrypts (microseconds); the plaintext goes to the provider call only. */
  reveal(): string;
}
