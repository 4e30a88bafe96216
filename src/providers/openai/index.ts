import type { ProviderAdapter } from "../types";
import type { ChatChunk, ChatCompletion, EmbeddingResponse } from "../wire";
import { postJson, postStream } from "./http";

/** OpenAI and every OpenAI-compatible server (Groq, Mistral, Together, DeepSeek, OpenRouter, vLLM). Retries are ours
 * to decide (and never after the first byte); the user's key travels in each request's headers only. */
export function openAiAdapter(): ProviderAdapter {
  return {
    complete(target, request, options) {
      return postJson<ChatCompletion>(
        target,
        "/chat/completions",
        { ...request, model: target.model, stream: false },
        options,
      );
    },

    stream(target, request, options) {
      const body = {
        ...request,
        model: target.model,
        stream: true,
        // Always ask for usage: it is how we bill. The pipeline hides it from clients who did not ask.
        stream_options: { ...(request.stream_options ?? {}), include_usage: true },
      };
      return postStream<ChatChunk>(target, "/chat/completions", body, options);
    },

    embed(target, request, options) {
      return postJson<EmbeddingResponse>(target, "/embeddings", { ...request, model: target.model }, options);
    },
  };
}
