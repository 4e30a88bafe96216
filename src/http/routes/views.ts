import type { AccountSummary, ApiKeyView, CreatedApiKey, User } from "../../identity";
import type { ProviderKeyView } from "../../provider-keys";

/** Wire shapes (snake_case) of the management API. Nothing secret is ever part of them but a new key, once. */

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export const apiKeyJson = (k: ApiKeyView) => ({
  id: k.id,
  object: "api_key",
  name: k.name,
  display: k.display,
  tier: k.tier,
  rate_limit_per_minute: k.rateLimitPerMinute,
  rate_limit_per_day: k.rateLimitPerDay,
  is_active: k.isActive,
  created_at: iso(k.createdAt),
  last_used: iso(k.lastUsed),
  expires_at: iso(k.expiresAt),
});

export const createdApiKeyJson = (k: CreatedApiKey) => ({
  ...apiKeyJson(k),
  key: k.key,
  warning: "Store this key now: it is shown only once.",
});

export const userJson = (u: User) => ({
  id: u.id,
  object: "user",
  email: u.email,
  tier: u.tier,
  is_active: u.isActive,
  created_at: iso(u.createdAt),
});

export const accountJson = (a: AccountSummary) => ({
  ...userJson(a),
  totals: {
    requests: a.totals.requests,
    prompt_tokens: a.totals.promptTokens,
    completion_tokens: a.totals.completionTokens,
    total_tokens: a.totals.totalTokens,
    cost_usd: a.totals.costUsd,
  },
});

export const providerKeyJson = (k: ProviderKeyView) => ({
  object: "provider_key",
  provider: k.provider,
  last4: k.last4,
  created_at: iso(k.createdAt),
  updated_at: iso(k.updatedAt),
});

export const list = <T>(data: T[]) => ({ object: "list", data });
