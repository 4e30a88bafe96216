import type { CallTarget, ProviderAdapter } from "../types";
import type { ChatChunk, ChatCompletion, EmbeddingResponse, TextCompletion } from "../wire";
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
      return postStream<ChatChunk>(target, "/chat/completions", streamingBody(target, request), options);
    },

    completeText(target, request, options) {
      return postJson<TextCompletion>(
        target,
        "/completions",
        { ...request, model: target.model, stream: false },
        options,
      );
    },

    streamText(target, request, options) {
      return postStream<TextCompletion>(target, "/completions", streamingBody(target, request), options);
    },

    embed(target, request, options) {
      return postJson<EmbeddingResponse>(target, "/embeddings", { ...request, model: target.model }, options);
    },
  };
}

/** A streaming request as sent upstream: always asking for usage (it is how we bill; the pipeline hides it from
 * clients who did not ask). */
function streamingBody(target: CallTarget, request: { stream_options?: unknown } & Record<string, unknown>) {
  return {
    ...request,
    model: target.model,
    stream: true,
    stream_options: { ...((request.stream_options as object | null | undefined) ?? {}), include_usage: true },
  };
}
