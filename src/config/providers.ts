import { z } from "zod";
import { readJsonConfig } from "./files";

const providersFileSchema = z.object({
  providers: z.record(
    z.string().regex(/^[a-z][a-z0-9_-]*$/),
    z.object({
      kind: z.enum(["openai", "anthropic", "openai-compatible"]),
      base_url: z.url({ protocol: /^https?$/ }),
    }),
  ),
});

export interface ProviderSettings {
  name: string;
  kind: "openai" | "anthropic" | "openai-compatible";
  baseUrl: string;
}

export function loadProviders(configDir: string): {
  providers?: ReadonlyMap<string, ProviderSettings>;
  problems: string[];
} {
  const { data, problems } = readJsonConfig(configDir, "providers.json", providersFileSchema);
  if (!data) return { problems };
  const providers = new Map<string, ProviderSettings>();
  for (const [name, p] of Object.entries(data.providers))
    providers.set(name, { name, kind: p.kind, baseUrl: p.base_url });
  return { providers, problems: [] };
}
