import type { ModelPricing, ProviderSettings } from "../config";
import { NotFoundError } from "../errors";
import { anthropicAdapter } from "./anthropic";
import { mockAdapter } from "./mock";
import { openAiAdapter } from "./openai";
import type { ProviderAdapter } from "./types";

export { isMock, MOCK_PROVIDER } from "./mock";
export { replayStream } from "./replay";
export { estimatePromptTokens, estimateTokens } from "./tokens";
export { type CallOptions, type CallTarget, type ProviderAdapter, UpstreamError } from "./types";
export type {
  ChatChunk,
  ChatCompletion,
  ChatRequest,
  ChatUsage,
  EmbeddingRequest,
  EmbeddingResponse,
  TextCompletion,
} from "./wire";
export { jsonTextOf, textParts, withWireText } from "./wire";

const adapters: Record<ProviderSettings["kind"], ProviderAdapter> = {
  openai: openAiAdapter(),
  "openai-compatible": openAiAdapter(),
  anthropic: anthropicAdapter(),
  mock: mockAdapter(),
};

export function adapterFor(provider: ProviderSettings): ProviderAdapter {
  return adapters[provider.kind];
}

export interface Route {
  provider: ProviderSettings;
  /** The model name sent upstream. */
  model: string;
}

/**
 * Model routing: `provider/model` names the provider explicitly; otherwise a model listed in config/models.json
 * goes to its provider, then the first provider whose prefix matches. Anything else is 404 model_not_found.
 */
export function routeModel(
  requested: string,
  providers: ReadonlyMap<string, ProviderSettings>,
  models: ReadonlyMap<string, ModelPricing>,
): Route {
  const slash = requested.indexOf("/");
  if (slash > 0) {
    const provider = providers.get(requested.slice(0, slash));
    if (provider && slash < requested.length - 1) return { provider, model: requested.slice(slash + 1) };
  }
  const known = models.get(requested);
  const byModel = known ? providers.get(known.provider) : undefined;
  if (byModel) return { provider: byModel, model: requested };
  for (const provider of providers.values()) {
    if (provider.modelPrefixes.some((prefix) => requested.startsWith(prefix))) return { provider, model: requested };
  }
  throw new NotFoundError(
    `The model '${requested}' does not exist or you do not have access to it. Name a known model or use '<provider>/<model>' with one of: ${[...providers.keys()].join(", ")}.`,
    { code: "model_not_found", param: "model" },
  );
}
