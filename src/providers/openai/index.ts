import OpenAI from "openai";
import { redactText } from "../../log";
import { type CallOptions, type CallTarget, type ProviderAdapter, UpstreamError } from "../types";
import type { ChatChunk, ChatRequest } from "../wire";

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
        throw toUpstreamError(target.provider, error);
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
        throw toUpstreamError(target.provider, error);
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
        throw toUpstreamError(target.provider, error);
      }
    },
  };
}

async function* mapErrors<T>(provider: string, source: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* source;
  } catch (error) {
    throw toUpstreamError(provider, error);
  }
}

/** Shared by the Anthropic adapter: both SDKs come from the same generator and have the same error classes. */
export function toUpstreamError(provider: string, error: unknown): unknown {
  if (error instanceof UpstreamError) return error;
  const e = error as {
    name?: string;
    status?: number;
    message?: string;
    error?: {
      message?: string;
      type?: string;
      code?: string | null;
      param?: string | null;
      error?: { message?: string; type?: string };
    };
    headers?: Headers | Record<string, string>;
  };
  if (e?.name === "APIUserAbortError" || e?.name === "AbortError") return error;
  if (e?.name === "APIConnectionTimeoutError")
    return new UpstreamError(provider, 0, `${provider} did not answer in time.`, { code: "upstream_timeout" });
  if (typeof e?.status !== "number") {
    if (e?.name === "APIConnectionError")
      return new UpstreamError(provider, 0, `Could not reach ${provider}.`, { code: "upstream_unreachable" });
    if (e?.name === "APIError") {
      // An error event in the middle of a stream: the SDK raises it without a status.
      const body = e.error?.error ?? e.error;
      return new UpstreamError(provider, 500, redactText(body?.message ?? e.message ?? "stream error"), {
        type: body?.type,
      });
    }
    return error;
  }
  // OpenAI nests {error: {...}}; Anthropic's body is {type: "error", error: {...}}.
  const body = e.error?.error ?? e.error;
  const headers = e.headers;
  const retryAfter = headers instanceof Headers ? headers.get("retry-after") : headers?.["retry-after"];
  return new UpstreamError(provider, e.status, redactText(body?.message ?? e.message ?? `HTTP ${e.status}`), {
    type: body?.type,
    code: (e.error as { code?: string | null } | undefined)?.code ?? null,
    param: (e.error as { param?: string | null } | undefined)?.param ?? null,
    retryAfter: retryAfter ?? undefined,
  });
}
