import { z } from "zod";
import { readJsonConfig } from "./files";

const budget = z.number().int().positive().nullable();

const tierSchema = z.object({
  requests_per_minute: z.number().int().positive(),
  requests_per_day: z.number().int().positive(),
  tokens_per_minute: budget,
  tokens_per_day: budget,
  /** Cost (USD, this calendar month in UTC) after which requests get 402 insufficient_quota; null: no cap. */
  monthly_spend_cap_usd: z.number().positive().nullable().default(null),
  /** Requests need a positive users.current_balance_usd (topped up by credit purchases or the CLI). */
  prepaid: z.boolean().default(false),
  /** Tokens of recalled memory a request may get at most; null: MEMORY_TOKEN_BUDGET (which also caps this). */
  max_memory_tokens: z.number().int().min(0).nullable().default(null),
  /** The abuse and prompt-injection guard: off, flag (header, usage-row flag, metric) or block (400). */
  guard: z.enum(["off", "flag", "block"]).default("off"),
  /** Polar products whose active subscription grants this tier. */
  polar_product_ids: z.array(z.string().min(1)).default([]),
});

const tiersFileSchema = z
  .object({
    default_tier: z.string(),
    tiers: z.record(z.string().regex(/^[a-z][a-z0-9_-]*$/), tierSchema),
  })
  .refine((file) => file.default_tier in file.tiers, { message: "default_tier must name one of the tiers" })
  .refine((file) => new Set(productIds(file.tiers)).size === productIds(file.tiers).length, {
    message: "a Polar product id may grant only one tier",
  });

const productIds = (tiers: Record<string, { polar_product_ids: string[] }>) =>
  Object.values(tiers).flatMap((t) => t.polar_product_ids);

export interface Tier {
  name: string;
  requestsPerMinute: number;
  requestsPerDay: number;
  /** null means no token budget. */
  tokensPerMinute: number | null;
  tokensPerDay: number | null;
  monthlySpendCapUsd: number | null;
  prepaid: boolean;
  /** null: MEMORY_TOKEN_BUDGET decides. */
  maxMemoryTokens: number | null;
  guard: "off" | "flag" | "block";
  /** Position in tiers.json (0 = first): when subscriptions grant several tiers, the highest rank wins. */
  rank: number;
}

export interface Tiers {
  defaultTier: string;
  byName: ReadonlyMap<string, Tier>;
  /** Polar product id → the tier its subscription grants. */
  byPolarProduct: ReadonlyMap<string, Tier>;
}

/** Problems are returned, not thrown, so they can be reported together with the environment's. */
export function loadTiers(configDir: string): { tiers?: Tiers; problems: string[] } {
  const { data, problems } = readJsonConfig(configDir, "tiers.json", tiersFileSchema);
  if (!data) return { problems };
  const byName = new Map<string, Tier>();
  const byPolarProduct = new Map<string, Tier>();
  for (const [name, t] of Object.entries(data.tiers)) {
    const tier: Tier = {
      name,
      requestsPerMinute: t.requests_per_minute,
      requestsPerDay: t.requests_per_day,
      tokensPerMinute: t.tokens_per_minute,
      tokensPerDay: t.tokens_per_day,
      monthlySpendCapUsd: t.monthly_spend_cap_usd,
      prepaid: t.prepaid,
      maxMemoryTokens: t.max_memory_tokens,
      guard: t.guard,
      rank: byName.size,
    };
    byName.set(name, tier);
    for (const product of t.polar_product_ids) byPolarProduct.set(product, tier);
  }
  return { tiers: { defaultTier: data.default_tier, byName, byPolarProduct }, problems: [] };
}

/**
 * Requests per minute / day of the tiers named free, pro and enterprise from the environment
 * (FREE_TIER_RATE_LIMIT_PER_MINUTE, …_PER_DAY, PRO_…, ENTERPRISE_…), over tiers.json. A variable for a tier that
 * tiers.json does not have is a problem, not ignored.
 */
export function overrideTierLimits(tiers: Tiers, env: Readonly<Record<string, unknown>>): string[] {
  const problems: string[] = [];
  for (const name of ["free", "pro", "enterprise"]) {
    for (const [suffix, field] of [
      ["PER_MINUTE", "requestsPerMinute"],
      ["PER_DAY", "requestsPerDay"],
    ] as const) {
      const variable = `${name.toUpperCase()}_TIER_RATE_LIMIT_${suffix}`;
      const value = env[variable];
      if (typeof value !== "number") continue;
      const tier = tiers.byName.get(name) as Tier | undefined;
      if (tier) tier[field] = value;
      else problems.push(`${variable}: config/tiers.json has no tier "${name}"`);
    }
  }
  return problems;
}
