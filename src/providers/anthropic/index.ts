import Anthropic from "@anthropic-ai/sdk";
import { clientCache } from "../client-cache";
import { toUpstreamError } from "../errors";
import type { CallOptions, CallTarget, ProviderAdapter } from "../types";
import type { ChatChunk } from "../wire";
import { type AnthropicMessage, AnthropicToOpenAIStream, fromAnthropicMessage, toAnthropicRequest } from "./translate";

/** Anthropic's Messages API through the official SDK, presented in OpenAI's wire format. */
export function anthropicAdapter(): ProviderAdapter {
  const cached = clientCache((baseURL, apiKey) => new Anthropic({ apiKey, baseURL, maxRetries: 0 }));
  const clientFor = (target: CallTarget) => cached(target.baseUrl, target.apiKey);
  const requestOptions = (options: CallOptions) => ({ signal: options.signal, timeout: options.timeoutMs });
  const now = () => Math.floor(Date.now() / 1000);

  return {
    async complete(target, request, options) {
      const body = toAnthropicRequest(request, target.model);
      try {
        const message = await clientFor(target).messages.create(
          { ...body, stream: false } as Anthropic.MessageCreateParamsNonStreaming,
          requestOptions(options),
        );
        return fromAnthropicMessage(message as unknown as AnthropicMessage, now());
      } catch (error) {
        throw toUpstreamError(target.provider, error, Anthropic);
      }
    },

    async stream(target, request, options) {
      const body = toAnthropicRequest(request, target.model);
      let events: AsyncIterable<Anthropic.RawMessageStreamEvent>;
      try {
        events = await clientFor(target).messages.create(
          { ...body, stream: true } as Anthropic.MessageCreateParamsStreaming,
          requestOptions(options),
        );
      } catch (error) {
        throw toUpstreamError(target.provider, error, Anthropic);
      }
      return translateStream(target.provider, events, new AnthropicToOpenAIStream(now()));
    },
  };
}

async function* translateStream(
  provider: string,
  events: AsyncIterable<Anthropic.RawMessageStreamEvent>,
  translator: AnthropicToOpenAIStream,
): AsyncIterable<ChatChunk> {
  try {
    for await (const event of events) yield* translator.translate(event as unknown as Record<string, unknown>);
  } catch (error) {
    throw toUpstreamError(provider, error, Anthropic, true);
  }
}
