import type { CacheMode } from "../cache/response-cache";
import type { Config } from "../config";

type MemoryMode = Config["memory"]["defaultMode"];

import type { Database, SqlExecutor } from "../db";
import { generateApiKey, maskedApiKey } from "./api-key-format";

/**
 * Users and their Perpetual API keys. Functions taking a `SqlExecutor` from `db.asUser` act as the user under
 * RLS; functions taking the `Database` itself are for places without a user context (admin, CLI, key lookup).
 */

export interface User {
  id: string;
  email: string | null;
  tier: string;
  isActive: boolean;
  createdAt: Date;
}

export interface ApiKeyView {
  id: string;
  userId: string;
  name: string;
  display: string;
  tier: string | null;
  rateLimitPerMinute: number | null;
  rateLimitPerDay: number | null;
  isActive: boolean;
  createdAt: Date;
  lastUsed: Date | null;
  expiresAt: Date | null;
}

export interface CreatedApiKey extends ApiKeyView {
  /** The full key: returned once, at creation, and never again. */
  key: string;
}

export interface KeyOptions {
  name?: string;
  expiresAt?: Date | null;
  /** Admin only: users cannot raise their own tier or limits (column privileges enforce it in the database). */
  tier?: string | null;
  rateLimitPerMinute?: number | null;
  rateLimitPerDay?: number | null;
}

const USER_COLUMNS = "id, email, tier, is_active, created_at";

/**
 * What the hot path needs to know about a user beyond identity, from `users u`: the tier in force (a paid
 * subscription's while it lasts, else the base tier), when that subscription tier lapses, this month's (UTC) spend
 * and the prepaid balance.
 */
export const STANDING_COLUMNS = `
  case when u.subscription_tier is not null and (u.subscription_tier_until is null or u.subscription_tier_until > now())
       then u.subscription_tier else u.tier end as tier_in_force,
  case when u.subscription_tier is not null and u.subscription_tier_until > now()
       then u.subscription_tier_until end as tier_until,
  case when u.spend_month = date_trunc('month', now() at time zone 'utc')::date
       then u.month_spend_usd else 0 end::float8 as month_spend_usd,
  u.current_balance_usd::float8 as balance_usd,
  u.subscription_tier,
  u.response_cache,
  u.memory_mode`;

export type StandingRow = {
  tier_in_force: string;
  tier_until: Date | null;
  month_spend_usd: number;
  balance_usd: number;
  /** The tier of the user's Polar subscription, lapsed or not (null: never subscribed). */
  subscription_tier: string | null;
  /** The user's own default for the response cache (null: the deployment's). */
  response_cache: CacheMode | null;
  memory_mode: MemoryMode | null;
};

/** What a user sets for themselves (PATCH /v1/me/settings). */
export interface UserSettings {
  /** The response cache's default for the user's requests; null: the deployment's RESPONSE_CACHE. */
  responseCache: CacheMode | null;
  /** The memory mode of the user's requests without x-perpetual-memory; null: the deployment's default. */
  memoryMode: MemoryMode | null;
}

/** Run as the user: RLS lets them read their row and update only the settings columns. */
export async function userSettings(tx: SqlExecutor, userId: string): Promise<UserSettings | undefined> {
  const [row] = await tx.query<{ response_cache: CacheMode | null; memory_mode: MemoryMode | null }>(
    "select response_cache, memory_mode from users where id = $1",
    [userId],
  );
  return row && { responseCache: row.response_cache, memoryMode: row.memory_mode };
}

export async function updateUserSettings(
  tx: SqlExecutor,
  userId: string,
  changes: Partial<UserSettings>,
): Promise<UserSettings | undefined> {
  if (changes.responseCache !== undefined) {
    await tx.query("update users set response_cache = $2 where id = $1", [userId, changes.responseCache]);
  }
  if (changes.memoryMode !== undefined) {
    await tx.query("update users set memory_mode = $2 where id = $1", [userId, changes.memoryMode]);
  }
  return userSettings(tx, userId);
}

/** Works as the user (RLS) and as a service. */
export async function findStanding(db: SqlExecutor, id: string): Promise<StandingRow | undefined> {
  const rows = await db.query<StandingRow>(`select ${STANDING_COLUMNS} from users u where u.id = $1`, [id]);
  return rows[0];
}
const KEY_COLUMNS =
  "id, user_id, name, key_prefix, key_last4, tier, rate_limit_per_minute, rate_limit_per_day, is_active, created_at, last_used, expires_at";

type UserRow = { id: string; email: string | null; tier: string; is_active: boolean; created_at: Date };
type KeyRow = {
  id: string;
  user_id: string;
  name: string;
  key_prefix: string;
  key_last4: string;
  tier: string | null;
  rate_limit_per_minute: number | null;
  rate_limit_per_day: number | null;
  is_active: boolean;
  created_at: Date;
  last_used: Date | null;
  expires_at: Date | null;
};

const toUser = (r: UserRow): User => ({
  id: r.id,
  email: r.email,
  tier: r.tier,
  isActive: r.is_active,
  createdAt: r.created_at,
});

const toKey = (r: KeyRow): ApiKeyView => ({
  id: r.id,
  userId: r.user_id,
  name: r.name,
  display: maskedApiKey(r.key_prefix, r.key_last4),
  tier: r.tier,
  rateLimitPerMinute: r.rate_limit_per_minute,
  rateLimitPerDay: r.rate_limit_per_day,
  isActive: r.is_active,
  createdAt: r.created_at,
  lastUsed: r.last_used,
  expiresAt: r.expires_at,
});

export class EmailTakenError extends Error {}

export async function createUser(db: SqlExecutor, email: string, tier: string): Promise<User> {
  const rows = await db.query<UserRow>(
    `insert into users (email, tier) values ($1, $2) on conflict do nothing returning ${USER_COLUMNS}`,
    [email, tier],
  );
  if (!rows[0]) throw new EmailTakenError(`A user with email ${email} already exists`);
  return toUser(rows[0]);
}

/** First sight of a Supabase Auth user: create the row with the same id. Idempotent under concurrency. */
export async function provisionUser(db: SqlExecutor, id: string, email: string | null, tier: string): Promise<User> {
  await db.query("insert into users (id, email, tier) values ($1, $2, $3) on conflict do nothing", [id, email, tier]);
  let user = await findUser(db, id);
  // The email belongs to another account (e.g. created by an operator before the user signed up): keep both apart.
  if (!user) {
    await db.query("insert into users (id, email, tier) values ($1, null, $2) on conflict do nothing", [id, tier]);
    user = await findUser(db, id);
  }
  if (!user) throw new Error("user provisioning failed");
  return user;
}

export async function findUser(db: SqlExecutor, id: string): Promise<User | undefined> {
  const rows = await db.query<UserRow>(`select ${USER_COLUMNS} from users where id = $1`, [id]);
  return rows[0] ? toUser(rows[0]) : undefined;
}

export async function findUserByEmail(db: SqlExecutor, email: string): Promise<User | undefined> {
  const rows = await db.query<UserRow>(`select ${USER_COLUMNS} from users where lower(email) = lower($1)`, [email]);
  return rows[0] ? toUser(rows[0]) : undefined;
}

export async function listUsers(db: SqlExecutor, limit: number, offset: number): Promise<User[]> {
  const rows = await db.query<UserRow>(`select ${USER_COLUMNS} from users order by created_at, id limit $1 offset $2`, [
    limit,
    offset,
  ]);
  return rows.map(toUser);
}

export async function updateUser(
  db: SqlExecutor,
  id: string,
  changes: { tier?: string; isActive?: boolean },
): Promise<User | undefined> {
  const rows = await db.query<UserRow>(
    `update users set tier = coalesce($2, tier), is_active = coalesce($3, is_active), updated_at = now()
      where id = $1 returning ${USER_COLUMNS}`,
    [id, changes.tier ?? null, changes.isActive ?? null],
  );
  return rows[0] ? toUser(rows[0]) : undefined;
}

/** Works as the user (only the columns users may set) and as admin (tier and limits too). */
export async function createApiKey(db: SqlExecutor, userId: string, options: KeyOptions = {}): Promise<CreatedApiKey> {
  const generated = generateApiKey();
  const admin =
    options.tier !== undefined || options.rateLimitPerMinute !== undefined || options.rateLimitPerDay !== undefined;
  const columns = ["user_id", "key_hash", "key_prefix", "key_last4", "name", "expires_at"];
  const values: unknown[] = [
    userId,
    generated.hash,
    generated.prefix,
    generated.last4,
    options.name ?? "default",
    options.expiresAt ?? null,
  ];
  if (admin) {
    columns.push("tier", "rate_limit_per_minute", "rate_limit_per_day");
    values.push(options.tier ?? null, options.rateLimitPerMinute ?? null, options.rateLimitPerDay ?? null);
  }
  const placeholders = values.map((_, i) => `$${i + 1}`).join(", ");
  const rows = await db.query<KeyRow>(
    `insert into api_keys (${columns.join(", ")}) values (${placeholders}) returning ${KEY_COLUMNS}`,
    values,
  );
  return { ...toKey(rows[0]!), key: generated.key };
}

export async function listApiKeys(db: SqlExecutor, userId: string): Promise<ApiKeyView[]> {
  const rows = await db.query<KeyRow>(
    `select ${KEY_COLUMNS} from api_keys where user_id = $1 order by created_at, id`,
    [userId],
  );
  return rows.map(toKey);
}

/** Returns the revoked key's id and owner, or undefined when no such key is visible. */
export async function revokeApiKey(
  db: SqlExecutor,
  keyId: string,
): Promise<{ id: string; userId: string } | undefined> {
  const rows = await db.query<{ id: string; user_id: string }>(
    "update api_keys set is_active = false, revoked_at = coalesce(revoked_at, now()) where id = $1 returning id, user_id",
    [keyId],
  );
  return rows[0] ? { id: rows[0].id, userId: rows[0].user_id } : undefined;
}

export interface AccountSummary extends User {
  totals: { requests: number; promptTokens: number; completionTokens: number; totalTokens: number; costUsd: number };
}

export async function accountSummary(tx: SqlExecutor, userId: string): Promise<AccountSummary | undefined> {
  const user = await findUser(tx, userId);
  if (!user) return undefined;
  const [t] = await tx.query<{ requests: number; prompt: number; completion: number; total: number; cost: string }>(
    `select count(*)::int as requests, coalesce(sum(prompt_tokens), 0)::int8 as prompt,
            coalesce(sum(completion_tokens), 0)::int8 as completion, coalesce(sum(total_tokens), 0)::int8 as total,
            coalesce(sum(cost_usd), 0)::numeric as cost
       from usage_logs where user_id = $1`,
    [userId],
  );
  return {
    ...user,
    totals: {
      requests: t!.requests,
      promptTokens: t!.prompt,
      completionTokens: t!.completion,
      totalTokens: t!.total,
      costUsd: Number(t!.cost),
    },
  };
}

/**
 * GDPR erasure, run as the user: every table's own rows, then the user. Later features add their tables here.
 * Returns how many rows each table lost.
 */
export async function deleteAccount(tx: SqlExecutor, userId: string): Promise<Record<string, number>> {
  const deleted: Record<string, number> = {};
  for (const table of ["responses", "memory_outbox", "usage_logs", "user_provider_keys", "api_keys"]) {
    deleted[table] = (await tx.query(`delete from ${table} where user_id = $1 returning 1`, [userId])).length;
  }
  deleted.users = (await tx.query("delete from users where id = $1 returning 1", [userId])).length;
  return deleted;
}

export interface Stats {
  users: number;
  activeKeys: number;
  requestsToday: number;
  tokensToday: number;
}

/** Moves the prepaid balance by `usd` (negative: a debit); the balance after, or undefined for no such user. */
export async function creditBalance(db: SqlExecutor, userId: string, usd: number): Promise<number | undefined> {
  const [row] = await db.query<{ balance: number }>(
    `update users set current_balance_usd = current_balance_usd + $2, updated_at = now() where id = $1
     returning current_balance_usd::float8 as balance`,
    [userId, usd],
  );
  return row?.balance;
}

export async function stats(db: Database): Promise<Stats> {
  const [row] = await db.query<{ users: number; keys: number; requests: number; tokens: number }>(
    `select (select count(*) from users)::int as users,
            (select count(*) from api_keys where is_active and (expires_at is null or expires_at > now()))::int as keys,
            count(*)::int as requests, coalesce(sum(total_tokens), 0)::int8 as tokens
       from usage_logs where created_at >= date_trunc('day', now())`,
  );
  return { users: row!.users, activeKeys: row!.keys, requestsToday: row!.requests, tokensToday: row!.tokens };
}
