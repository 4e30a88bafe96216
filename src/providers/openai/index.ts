import OpenAI from "openai";
import { clientPerBaseUrl } from "../client-cache";
import { toUpstreamError } from "../errors";
import type { CallOptions, CallTarget, ProviderAdapter } from "../types";
import type { ChatChunk } from "../wire";

/** OpenAI and every OpenAI-compatible server (Groq, Mistral, Together, DeepSeek, OpenRouter, vLLM) via the SDK. */
export function openAiAdapter(): ProviderAdapter {
  // Retries are ours to decide (and never after the first byte), so the SDK's are off. The client's own key is a
  // placeholder: the user's key goes in each request's headers.
  const clients = clientPerBaseUrl((baseURL) => new OpenAI({ apiKey: "per-request", baseURL, maxRetries: 0 }));
  const clientFor = (target: CallTarget) => clients(target.baseUrl);
  const requestOptions = (target: CallTarget, options: CallOptions) => ({
    signal: options.signal,
    timeout: options.timeoutMs,
    headers: { authorization: `Bearer ${target.apiKey || "none"}` },
  });

  return {
    async complete(target, request, options) {
      try {
        const body = {
          ...request,
          model: target.model,
          stream: false,
        } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming;
        return await clientFor(target).chat.completions.create(body, requestOptions(target, options));
      } catch (error) {
        throw toUpstream(target, error);
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
        stream = await clientFor(target).chat.completions.create(body, requestOptions(target, options));
      } catch (error) {
        throw toUpstream(target, error);
      }
      return mapErrors(target, stream);
    },

    async embed(target, request, options) {
      try {
        return await clientFor(target).embeddings.create(
          { ...request, model: target.model } as OpenAI.EmbeddingCreateParams,
          requestOptions(target, options),
        );
      } catch (error) {
        throw toUpstream(target, error);
      }
    },
  };
}

const toUpstream = (target: CallTarget, error: unknown, midStream = false) =>
  toUpstreamError(target, error, OpenAI, midStream);

async function* mapErrors<T>(target: CallTarget, source: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* source;
  } catch (error) {
    throw toUpstream(target, error, true);
  }
}
