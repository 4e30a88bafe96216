import { z } from "zod";
import type {
  AccountSummary,
  ApiKeyView,
  CreatedApiKey as CreatedApiKeyRecord,
  Stats,
  User as UserRecord,
} from "../../identity";
import type { Memory } from "../../memory";
import type { ProviderKeyView } from "../../provider-keys";

/**
 * Wire shapes (snake_case) of the management API, as zod schemas (published in /openapi.json) and the functions
 * that produce them (typed by those schemas, so the document cannot drift from what is sent). Nothing secret is
 * ever part of them but a new key, once.
 */

const timestamp = z.iso.datetime();

export const ApiKey = z
  .strictObject({
    id: z.uuid(),
    object: z.literal("api_key"),
    name: z.string(),
    display: z.string().meta({ description: "Prefix and last four characters, e.g. `sk-perp-Ab…wxyz`." }),
    tier: z.string().nullable().meta({ description: "Overrides the user's tier for this key when set." }),
    rate_limit_per_minute: z.int().nullable(),
    rate_limit_per_day: z.int().nullable(),
    is_active: z.boolean(),
    created_at: timestamp,
    last_used: timestamp.nullable(),
    expires_at: timestamp.nullable(),
  })
  .meta({ id: "ApiKey" });

export const CreatedApiKey = ApiKey.extend({
  key: z.string().meta({ description: "The full key. Shown once: only its SHA-256 is stored." }),
  warning: z.string(),
}).meta({ id: "CreatedApiKey" });

export const User = z
  .strictObject({
    id: z.uuid(),
    object: z.literal("user"),
    email: z.string().nullable(),
    tier: z.string(),
    is_active: z.boolean(),
    created_at: timestamp,
  })
  .meta({ id: "User" });

export const Account = User.extend({
  totals: z.strictObject({
    requests: z.int(),
    prompt_tokens: z.int(),
    completion_tokens: z.int(),
    total_tokens: z.int(),
    cost_usd: z.number(),
  }),
}).meta({ id: "Account" });

export const ProviderKey = z
  .strictObject({
    object: z.literal("provider_key"),
    provider: z.string(),
    last4: z.string(),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: "ProviderKey", description: "A stored provider key: never the key itself, only its last 4 characters." });

export const DeletedAccount = z
  .strictObject({
    id: z.uuid(),
    object: z.literal("user"),
    deleted: z.literal(true),
    deleted_rows: z.record(z.string(), z.int()).meta({ description: "Rows erased, per table." }),
  })
  .meta({ id: "DeletedAccount" });

export const RevokedApiKey = z
  .strictObject({ id: z.uuid(), object: z.literal("api_key"), revoked: z.literal(true) })
  .meta({ id: "RevokedApiKey" });

export const DeletedProviderKey = z
  .strictObject({ object: z.literal("provider_key"), provider: z.string(), deleted: z.literal(true) })
  .meta({ id: "DeletedProviderKey" });

export const CreatedUser = User.extend({ api_key: CreatedApiKey }).meta({ id: "CreatedUser" });

export const ServiceStats = z
  .strictObject({
    object: z.literal("stats"),
    users: z.int(),
    active_keys: z.int(),
    requests_today: z.int(),
    tokens_today: z.int(),
  })
  .meta({ id: "Stats" });

const iso = (d: Date | null) => (d ? d.toISOString() : null);
const isoOf = (d: Date) => d.toISOString();

export const apiKeyJson = (k: ApiKeyView): z.output<typeof ApiKey> => ({
  id: k.id,
  object: "api_key",
  name: k.name,
  display: k.display,
  tier: k.tier,
  rate_limit_per_minute: k.rateLimitPerMinute,
  rate_limit_per_day: k.rateLimitPerDay,
  is_active: k.isActive,
  created_at: isoOf(k.createdAt),
  last_used: iso(k.lastUsed),
  expires_at: iso(k.expiresAt),
});

export const createdApiKeyJson = (k: CreatedApiKeyRecord): z.output<typeof CreatedApiKey> => ({
  ...apiKeyJson(k),
  key: k.key,
  warning: "Store this key now: it is shown only once.",
});

export const userJson = (u: UserRecord): z.output<typeof User> => ({
  id: u.id,
  object: "user",
  email: u.email,
  tier: u.tier,
  is_active: u.isActive,
  created_at: isoOf(u.createdAt),
});

export const accountJson = (a: AccountSummary): z.output<typeof Account> => ({
  ...userJson(a),
  totals: {
    requests: a.totals.requests,
    prompt_tokens: a.totals.promptTokens,
    completion_tokens: a.totals.completionTokens,
    total_tokens: a.totals.totalTokens,
    cost_usd: a.totals.costUsd,
  },
});

export const providerKeyJson = (k: ProviderKeyView): z.output<typeof ProviderKey> => ({
  object: "provider_key",
  provider: k.provider,
  last4: k.last4,
  created_at: isoOf(k.createdAt),
  updated_at: isoOf(k.updatedAt),
});

export const statsJson = (s: Stats): z.output<typeof ServiceStats> => ({
  object: "stats",
  users: s.users,
  active_keys: s.activeKeys,
  requests_today: s.requestsToday,
  tokens_today: s.tokensToday,
});

export const list = <T>(data: T[]) => ({ object: "list" as const, data });

export const MemoryView = z
  .strictObject({
    id: z.uuid(),
    object: z.literal("memory"),
    conversation_id: z.string().nullable(),
    role: z.enum(["user", "assistant"]),
    text: z.string(),
    created_at: z.iso.datetime(),
    model: z.string().nullable(),
    request_id: z.string().meta({ description: "The request whose exchange this chunk came from." }),
  })
  .meta({ id: "Memory" });

export const memoryJson = (m: Memory): z.output<typeof MemoryView> => ({
  id: m.id,
  object: "memory",
  conversation_id: m.conversationId,
  role: m.role,
  text: m.text,
  created_at: m.createdAt,
  model: m.model,
  request_id: m.requestId,
});
