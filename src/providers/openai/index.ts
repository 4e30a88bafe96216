import OpenAI from "openai";
import { clientCache } from "../client-cache";
import { toUpstreamError } from "../errors";
import type { CallOptions, CallTarget, ProviderAdapter } from "../types";
import type { ChatChunk } from "../wire";

/** OpenAI and every OpenAI-compatible server (Groq, Mistral, Together, DeepSeek, OpenRouter, vLLM) via the SDK. */
export function openAiAdapter(): ProviderAdapter {
  // Retries are ours to decide (and never after the first byte), so the SDK's are off.
  const cached = clientCache((baseURL, apiKey) => new OpenAI({ apiKey: apiKey || "none", baseURL, maxRetries: 0 }));
  const clientFor = (target: CallTarget) => cached(target.baseUrl, target.apiKey);
  const requestOptions = (options: CallOptions) => ({ signal: options.signal, timeout: options.timeoutMs });

  return {
    async complete(target, request, options) {
      try {
        const body = {
          ...request,
          model: target.model,
          stream: false,
        } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming;
        return await clientFor(target).chat.completions.create(body, requestOptions(options));
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
        stream = await clientFor(target).chat.completions.create(body, requestOptions(options));
      } catch (error) {
        throw toUpstream(target.provider, error);
      }
      return mapErrors(target.provider, stream);
    },

    async embed(target, request, options) {
      try {
        return await clientFor(target).embeddings.create(
          { ...request, model: target.model } as OpenAI.EmbeddingCreateParams,
          requestOptions(options),
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
