import { z } from "zod";
import { readJsonConfig } from "./files";

const budget = z.number().int().positive().nullable();

const tierSchema = z.object({
  requests_per_minute: z.number().int().positive(),
  requests_per_day: z.number().int().positive(),
  tokens_per_minute: budget,
  tokens_per_day: budget,
});

const tiersFileSchema = z
  .object({
    default_tier: z.string(),
    tiers: z.record(z.string().regex(/^[a-z][a-z0-9_-]*$/), tierSchema),
  })
  .refine((file) => file.default_tier in file.tiers, { message: "default_tier must name one of the tiers" });

export interface Tier {
  name: string;
  requestsPerMinute: number;
  requestsPerDay: number;
  /** null means no token budget. */
  tokensPerMinute: number | null;
  tokensPerDay: number | null;
}

export interface Tiers {
  defaultTier: string;
  byName: ReadonlyMap<string, Tier>;
}

/** Problems are returned, not thrown, so they can be reported together with the environment's. */
export function loadTiers(configDir: string): { tiers?: Tiers; problems: string[] } {
  const { data, problems } = readJsonConfig(configDir, "tiers.json", tiersFileSchema);
  if (!data) return { problems };
  const byName = new Map<string, Tier>();
  for (const [name, t] of Object.entries(data.tiers)) {
    byName.set(name, {
      name,
      requestsPerMinute: t.requests_per_minute,
      requestsPerDay: t.requests_per_day,
      tokensPerMinute: t.tokens_per_minute,
      tokensPerDay: t.tokens_per_day,
    });
  }
  return { tiers: { defaultTier: data.default_tier, byName }, problems: [] };
}
