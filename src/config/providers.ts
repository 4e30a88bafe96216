import { z } from "zod";
import { readJsonConfig } from "./files";

const providersFileSchema = z.object({
  providers: z.record(
    z.string().regex(/^[a-z][a-z0-9_-]*$/),
    z.object({
      kind: z.enum(["openai", "anthropic", "openai-compatible"]),
      base_url: z.url({ protocol: /^https?$/ }),
      model_prefixes: z.array(z.string().min(1)).default([]),
    }),
  ),
});

const price = z.number().nonnegative();
const modelsFileSchema = z.object({
  models: z.record(
    z.string().min(1),
    z.object({ provider: z.string(), input: price, cached_input: price, output: price }),
  ),
});

export interface ProviderSettings {
  name: string;
  /** "mock": the built-in provider of mock_response requests (providers/mock.ts), never configured. */
  kind: "openai" | "anthropic" | "openai-compatible" | "mock";
  baseUrl: string;
  modelPrefixes: string[];
}

/** USD per one million tokens. */
export interface ModelPricing {
  provider: string;
  input: number;
  cachedInput: number;
  output: number;
}

/** Environment variable that overrides a provider's base URL, e.g. OPENAI_BASE_URL. */
export const baseUrlVariable = (provider: string) => `${provider.toUpperCase().replace(/-/g, "_")}_BASE_URL`;

export function loadProviders(
  configDir: string,
  env: NodeJS.ProcessEnv,
): {
  providers?: ReadonlyMap<string, ProviderSettings>;
  models?: ReadonlyMap<string, ModelPricing>;
  problems: string[];
} {
  const providersFile = readJsonConfig(configDir, "providers.json", providersFileSchema);
  const modelsFile = readJsonConfig(configDir, "models.json", modelsFileSchema);
  const problems = [...providersFile.problems, ...modelsFile.problems];
  if (!providersFile.data || !modelsFile.data) return { problems };

  const providers = new Map<string, ProviderSettings>();
  for (const [name, p] of Object.entries(providersFile.data.providers)) {
    const variable = baseUrlVariable(name);
    const override = env[variable]?.trim();
    if (override && !/^https?:\/\/[^\s]+$/.test(override))
      problems.push(`${variable}: must be an http:// or https:// URL`);
    providers.set(name, {
      name,
      kind: p.kind,
      baseUrl: (override || p.base_url).replace(/\/+$/, ""),
      modelPrefixes: p.model_prefixes,
    });
  }
  const models = new Map<string, ModelPricing>();
  for (const [id, m] of Object.entries(modelsFile.data.models)) {
    if (!providers.has(m.provider))
      problems.push(`models.json: models.${id}.provider: unknown provider "${m.provider}"`);
    models.set(id, { provider: m.provider, input: m.input, cachedInput: m.cached_input, output: m.output });
  }
  return { providers, models, problems };
}
