import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";

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
  const path = join(configDir, "tiers.json");
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    return { problems: [`${path}: cannot be read as JSON (${(error as Error).message})`] };
  }
  const parsed = tiersFileSchema.safeParse(raw);
  if (!parsed.success) {
    return {
      problems: parsed.error.issues.map((issue) => `${path}: ${issue.path.join(".") || "(root)"}: ${issue.message}`),
    };
  }
  const byName = new Map<string, Tier>();
  for (const [name, t] of Object.entries(parsed.data.tiers)) {
    byName.set(name, {
      name,
      requestsPerMinute: t.requests_per_minute,
      requestsPerDay: t.requests_per_day,
      tokensPerMinute: t.tokens_per_minute,
      tokensPerDay: t.tokens_per_day,
    });
  }
  return { tiers: { defaultTier: parsed.data.default_tier, byName }, problems: [] };
}
