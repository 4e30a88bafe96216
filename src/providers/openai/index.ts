import OpenAI from "openai";
import { toUpstreamError } from "../errors";
import type { CallOptions, CallTarget, ProviderAdapter } from "../types";
import type { ChatChunk } from "../wire";

/** OpenAI and every OpenAI-compatible server (Groq, Mistral, Together, DeepSeek, OpenRouter, vLLM) via the SDK. */
export function openAiAdapter(): ProviderAdapter {
  const clientFor = (target: CallTarget, options: CallOptions) =>
    // Retries are ours to decide (and never after the first byte), so the SDK's are off.
    new OpenAI({ apiKey: target.apiKey || "none", baseURL: target.baseUrl, maxRetries: 0, timeout: options.timeoutMs });

  return {
    async complete(target, request, options) {
      try {
        const body = {
          ...request,
          model: target.model,
          stream: false,
        } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming;
        return await clientFor(target, options).chat.completions.create(body, { signal: options.signal });
      } catch (error) {
        throw toUpstream(target.provider, error);
      }
    },

    async stream(target, request, options) {
      const body = {
        ...request,
        model: target.model,
        stream: true,
        // Always ask for usage: it is how we bill. The pipeline hides it from clients who did not ask.
        stream_options: { ...(request.stream_options ?? {}), include_usage: true },
      } as OpenAI.Chat.ChatCompletionCreateParamsStreaming;
      let stream: AsyncIterable<ChatChunk>;
      try {
        stream = await clientFor(target, options).chat.completions.create(body, { signal: options.signal });
      } catch (error) {
        throw toUpstream(target.provider, error);
      }
      return mapErrors(target.provider, stream);
    },

    async embed(target, request, options) {
      try {
        return await clientFor(target, options).embeddings.create(
          { ...request, model: target.model } as OpenAI.EmbeddingCreateParams,
          { signal: options.signal },
        );
      } catch (error) {
        throw toUpstream(target.provider, error);
      }
    },
  };
}

const toUpstream = (provider: string, error: unknown, midStream = false) =>
  toUpstreamError(provider, error, OpenAI, midStream);

async function* mapErrors<T>(provider: string, source: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* source;
  } catch (error) {
    throw toUpstream(provider, error, true);
  }
}
