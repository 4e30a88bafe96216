import type { Database } from "../db";
import { NotFoundError } from "../errors";
import {
  type AccountSummary,
  type ApiKeyView,
  accountSummary,
  deleteAccount,
  listApiKeys,
  type UserChanges,
  type UserSettings,
  userSettings,
} from "../identity";
import type { Logger } from "../log";
import type { Memory, MemoryService } from "../memory";
import type { ProviderKeys, ProviderKeyView } from "../provider-keys";
import { announceChange } from "./audit";

export interface UserExport {
  account: AccountSummary;
  settings: UserSettings;
  apiKeys: ApiKeyView[];
  providerKeys: ProviderKeyView[];
  /** usage_logs rows, every column but the ids. */
  usage: Record<string, unknown>[];
  responses: Record<string, unknown>[];
  memories: Memory[];
  pendingMemories: Record<string, unknown>[];
}

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

  /**
   * Everything Perpetual holds about the user (GDPR access and portability), read as the user (RLS): the account,
   * settings, key metadata (never a key), every usage row, stored responses, memories and the exchanges still
   * waiting to become memories.
   */
  async export(userId: string): Promise<UserExport | undefined> {
    const held = await this.deps.db.asUser(userId, async (tx) => {
      const account = await accountSummary(tx, userId);
      if (!account) return undefined;
      const rows = (sql: string) => tx.query<{ row: Record<string, unknown> }>(sql, [userId]);
      return {
        account,
        settings: (await userSettings(tx, userId))!,
        apiKeys: await listApiKeys(tx, userId),
        usage: await rows(
          "select to_jsonb(u) - 'id' - 'user_id' as row from usage_logs u where user_id = $1 order by created_at, id",
        ),
        responses: await rows(
          `select jsonb_build_object('id', id, 'previous_response_id', previous_response_id,
                    'created_at', created_at, 'response', response) as row
             from responses where user_id = $1 order by created_at, id`,
        ),
        pendingMemories: await rows(
          `select jsonb_build_object('request_id', request_id, 'conversation_id', conversation_id,
                    'messages', messages, 'created_at', created_at) as row
             from memory_outbox where user_id = $1 order by id`,
        ),
      };
    });
    if (!held) return undefined;
    const memories: Memory[] = [];
    for (let after: string | undefined, first = true; first || after; first = false) {
      const page = await this.deps.memory.list(userId, { limit: 1000, after });
      memories.push(...page.data);
      after = page.next;
    }
    return {
      ...held,
      providerKeys: await this.deps.providerKeys.list(userId),
      usage: held.usage.map((r) => r.row),
      responses: held.responses.map((r) => r.row),
      pendingMemories: held.pendingMemories.map((r) => r.row),
      memories,
    };
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
