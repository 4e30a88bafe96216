import type { ModelPricing } from "../config";

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
  /** Part of promptTokens served from the provider's prompt cache (billed at the cached-input price). */
  cachedTokens: number;
}

/** USD cost from config/models.json prices (per 1M tokens). Unknown models cost 0 and say so; never throws. */
export function costOf(
  models: ReadonlyMap<string, ModelPricing>,
  provider: string,
  model: string,
  usage: TokenUsage,
): { costUsd: number; known: boolean } {
  const price = models.get(model) ?? models.get(`${provider}/${model}`) ?? dated(models, model);
  if (!price || price.provider !== provider) return { costUsd: 0, known: false };
  const cached = Math.min(usage.cachedTokens, usage.promptTokens);
  const cost =
    ((usage.promptTokens - cached) * price.input + cached * price.cachedInput + usage.completionTokens * price.output) /
    1e6;
  return { costUsd: Math.round(cost * 1e8) / 1e8, known: true };
}

/** Providers answer with dated snapshots (gpt-4o-2024-08-06, claude-sonnet-4-5-20250929): price them as the alias. */
function dated(models: ReadonlyMap<string, ModelPricing>, model: string): ModelPricing | undefined {
  const alias = model.replace(/-\d{4}-\d{2}-\d{2}$/, "").replace(/-\d{8}$/, "");
  return alias === model ? undefined : models.get(alias);
}
