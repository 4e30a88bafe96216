import type { Tiers } from "../config";
import type { Database, SqlExecutor } from "../db";
import { ConflictError, InvalidRequestError, NotFoundError } from "../errors";
import {
  type CreatedApiKey,
  createApiKey,
  createUser,
  creditBalance,
  EmailTakenError,
  findUser,
  type KeyOptions,
  revokeApiKey,
  type User,
  type UserChanges,
  type UserSettings,
  updateUser,
  updateUserSettings,
} from "../identity";
import type { Logger } from "../log";
import { type Actor, announceChange, audit } from "./audit";

export interface AccountsDeps {
  db: Database;
  tiers: Tiers;
  userChanges: UserChanges;
  logger: Logger;
}

const userNotFound = (userId: string) =>
  new NotFoundError(`No user found with id '${userId}'.`, { code: "user_not_found" });

/**
 * The flows that change users, their API keys, settings and balance: each owns its transaction, forgets what
 * replicas cache about the user (UserChanges), and writes one audit line. HTTP routes and CLI commands only
 * translate to and from these.
 */
export class Accounts {
  constructor(private readonly deps: AccountsDeps) {}

  /** A user and a first API key, in one transaction. */
  async createUserWithFirstKey(
    actor: Actor,
    email: string,
    tier = this.deps.tiers.defaultTier,
  ): Promise<{ user: User; key: CreatedApiKey }> {
    this.assertTier(tier);
    const created = await this.deps.db
      .transaction(async (tx) => {
        const user = await createUser(tx, email, tier);
        return { user, key: await createApiKey(tx, user.id, { name: "default" }) };
      })
      .catch((error: unknown) => {
        if (error instanceof EmailTakenError)
          throw new ConflictError(error.message, { code: "email_taken", param: "email" });
        throw error;
      });
    this.audit(actor, "users.create", { target_user_id: created.user.id, tier: created.user.tier });
    return created;
  }

  /** An operator changes a user's tier or suspends / reactivates them. */
  async updateUser(actor: Actor, userId: string, changes: { tier?: string; isActive?: boolean }): Promise<User> {
    if (changes.tier !== undefined) this.assertTier(changes.tier);
    const user = await updateUser(this.deps.db, userId, changes);
    if (!user) throw userNotFound(userId);
    await this.changed(actor, "users.update", userId, { tier: changes.tier, is_active: changes.isActive });
    return user;
  }

  /** A user creates their own key (no tier or limits of its own); an operator may set those. */
  async createApiKey(actor: Actor, userId: string, options: KeyOptions = {}): Promise<CreatedApiKey> {
    if (options.tier) this.assertTier(options.tier);
    const key = await this.as(actor, userId, async (tx) => {
      if (!("user" in actor) && !(await findUser(tx, userId))) throw userNotFound(userId);
      return createApiKey(tx, userId, options);
    });
    this.audit(actor, "api_keys.create", { target_user_id: userId, api_key_id: key.id });
    return key;
  }

  /** A user revokes one of their keys (another user's is not found); an operator any key. */
  async revokeApiKey(actor: Actor, keyId: string): Promise<void> {
    const revoked = await this.as(actor, "user" in actor ? actor.user : undefined, (tx) => revokeApiKey(tx, keyId));
    if (!revoked) throw new NotFoundError(`No api key found with id '${keyId}'.`, { code: "api_key_not_found" });
    await this.changed(actor, "api_keys.revoke", revoked.userId, { api_key_id: keyId });
  }

  async updateSettings(userId: string, changes: Partial<UserSettings>): Promise<UserSettings> {
    const settings = await this.deps.db.asUser(userId, (tx) => updateUserSettings(tx, userId, changes));
    if (!settings) throw new NotFoundError("This account no longer exists.", { code: "user_not_found" });
    // Every replica's cached lookup of this user carries the settings.
    await this.changed({ user: userId }, "settings.update", userId, {
      response_cache: changes.responseCache,
      memory_mode: changes.memoryMode,
    });
    return settings;
  }

  /** Moves a user's prepaid balance; returns the balance after. */
  async creditBalance(actor: Actor, userId: string, usd: number): Promise<number> {
    if (!Number.isFinite(usd) || usd === 0 || Math.abs(usd) > 1e7) {
      throw new InvalidRequestError("The amount must be a non-zero number of dollars up to 10,000,000.", {
        code: "invalid_value",
        param: "usd",
      });
    }
    const balance = await creditBalance(this.deps.db, userId, usd);
    if (balance === undefined) throw userNotFound(userId);
    await this.changed(actor, "billing.credit", userId, { usd, balance_usd: balance });
    return balance;
  }

  /** A user's statements run as that user (RLS); an operator's as the service. */
  private as<T>(actor: Actor, userId: string | undefined, work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    if ("user" in actor && userId) return this.deps.db.asUser(userId, work);
    return this.deps.db.transaction(work);
  }

  private assertTier(tier: string): void {
    const { byName } = this.deps.tiers;
    if (!byName.has(tier)) {
      throw new InvalidRequestError(`Invalid 'tier': must be one of ${[...byName.keys()].join(", ")}`, {
        code: "invalid_value",
        param: "tier",
      });
    }
  }

  private changed(actor: Actor, action: string, userId: string, fields: Record<string, unknown>) {
    return announceChange(this.deps, actor, action, userId, fields);
  }

  private audit(actor: Actor, action: string, fields: Record<string, unknown>): void {
    audit(this.deps.logger, actor, action, fields);
  }
}
