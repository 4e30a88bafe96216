import type { Database } from "../db";
import { NotFoundError } from "../errors";
import { deleteAccount, type UserChanges } from "../identity";
import type { Logger } from "../log";
import type { MemoryService } from "../memory";
import type { ProviderKeys, ProviderKeyView } from "../provider-keys";
import { announceChange } from "./audit";

export interface UserDataDeps {
  db: Database;
  userChanges: UserChanges;
  providerKeys: ProviderKeys;
  memory: MemoryService;
  logger: Logger;
}

/**
 * The flows over what a user stores with us beyond their account row: provider keys and, at erasure, everything.
 * They need the running server's vault and memory service, so (unlike `Accounts`) they are not CLI commands.
 */
export class UserData {
  constructor(private readonly deps: UserDataDeps) {}

  /** Adds or replaces the user's key for a provider; every replica drops its cached sealed key. */
  async addProviderKey(userId: string, provider: string, apiKey: string): Promise<ProviderKeyView> {
    const stored = await this.deps.providerKeys.add(userId, provider, apiKey);
    await announceChange(this.deps, { user: userId }, "provider_keys.add", userId, { provider });
    return stored;
  }

  async removeProviderKey(userId: string, provider: string): Promise<void> {
    if (!(await this.deps.providerKeys.remove(userId, provider))) {
      throw new NotFoundError(`No API key found for provider ${provider}.`, {
        code: "provider_key_not_found",
        param: "provider",
      });
    }
    await announceChange(this.deps, { user: userId }, "provider_keys.remove", userId, { provider });
  }

  /** GDPR erasure, run as the user: the rows of every table, then the memories. Returns what was erased. */
  async erase(userId: string): Promise<Record<string, number>> {
    const deleted = await this.deps.db.asUser(userId, (tx) => deleteAccount(tx, userId));
    await announceChange(this.deps, { user: userId }, "users.erase", userId, {});
    // After the rows: the outbox rows are gone, so no worker can write a point of this user again.
    const memories = await this.deps.memory.forgetUser(userId);
    return { ...deleted, memories };
  }
}
