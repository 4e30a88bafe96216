import type { ProviderSettings } from "../config";
import { replayStream } from "./replay";
import { estimatePromptTokens, estimateTokens } from "./tokens";
import type { ProviderAdapter } from "./types";
import type { ChatCompletion, ChatRequest } from "./wire";

/**
 * The provider of `mock_response` requests (LiteLLM's convention): it answers with the given text, shaped exactly
 * like a provider's answer, without a key or a network call. Usage is the tokenizer's estimate; it costs nothing
 * and is not billed.
 */
export const MOCK_PROVIDER: ProviderSettings = { name: "mock", kind: "mock", baseUrl: "", modelPrefixes: [] };

export const isMock = (provider: ProviderSettings) => provider.kind === "mock";

function answer(request: ChatRequest): ChatCompletion {
  const text = typeof request.mock_response === "string" ? request.mock_response : "";
  const prompt = estimatePromptTokens(request.messages as ReadonlyArray<{ content?: unknown }>);
  const completion = estimateTokens(text);
  return {
    id: `chatcmpl-mock-${crypto.randomUUID().replaceAll("-", "")}`,
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model: request.model,
    choices: [
      { index: 0, message: { role: "assistant", content: text, refusal: null }, finish_reason: "stop", logprobs: null },
    ],
    usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
  };
}

export function mockAdapter(): ProviderAdapter {
  return {
    complete: async (_target, request) => answer(request),
    // With the usage chunk, as every adapter streams: the pipeline drops it for a client that did not ask.
    stream: async (_target, request) => replayStream(answer(request), true),
  };
}
