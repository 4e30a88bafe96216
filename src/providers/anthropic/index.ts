import Anthropic from "@anthropic-ai/sdk";
import { clientPerBaseUrl } from "../client-cache";
import { toUpstreamError } from "../errors";
import type { CallOptions, CallTarget, ProviderAdapter } from "../types";
import type { ChatChunk } from "../wire";
import { type AnthropicMessage, AnthropicToOpenAIStream, fromAnthropicMessage, toAnthropicRequest } from "./translate";

/** Anthropic's Messages API through the official SDK, presented in OpenAI's wire format. */
export function anthropicAdapter(): ProviderAdapter {
  // The client's own key is a placeholder: the user's key goes in each request's headers.
  const clients = clientPerBaseUrl((baseURL) => new Anthropic({ apiKey: "per-request", baseURL, maxRetries: 0 }));
  const clientFor = (target: CallTarget) => clients(target.baseUrl);
  const requestOptions = (target: CallTarget, options: CallOptions) => ({
    signal: options.signal,
    timeout: options.timeoutMs,
    headers: { "x-api-key": target.apiKey },
  });
  const now = () => Math.floor(Date.now() / 1000);

  return {
    async complete(target, request, options) {
      const body = toAnthropicRequest(request, target.model);
      try {
        const message = await clientFor(target).messages.create(
          { ...body, stream: false } as Anthropic.MessageCreateParamsNonStreaming,
          requestOptions(target, options),
        );
        return fromAnthropicMessage(message as unknown as AnthropicMessage, now());
      } catch (error) {
        throw toUpstreamError(target, error, Anthropic);
      }
    },

    async stream(target, request, options) {
      const body = toAnthropicRequest(request, target.model);
      let events: AsyncIterable<Anthropic.RawMessageStreamEvent>;
      try {
        events = await clientFor(target).messages.create(
          { ...body, stream: true } as Anthropic.MessageCreateParamsStreaming,
          requestOptions(target, options),
        );
      } catch (error) {
        throw toUpstreamError(target, error, Anthropic);
      }
      return translateStream(target, events, new AnthropicToOpenAIStream(now()));
    },

    async countTokens(target, request, options) {
      // What count_tokens takes of a Messages request (max_tokens, stream and sampling fields it refuses).
      const { messages, system, tools, tool_choice, thinking, mcp_servers } = request;
      const params = { model: target.model, messages, system, tools, tool_choice, thinking, mcp_servers };
      try {
        const counted = await clientFor(target).messages.countTokens(
          Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined)) as never,
          requestOptions(target, options),
        );
        return counted.input_tokens;
      } catch (error) {
        throw toUpstreamError(target, error, Anthropic);
      }
    },
  };
}

async function* translateStream(
  target: CallTarget,
  events: AsyncIterable<Anthropic.RawMessageStreamEvent>,
  translator: AnthropicToOpenAIStream,
): AsyncIterable<ChatChunk> {
  try {
    for await (const event of events) yield* translator.translate(event as unknown as Record<string, unknown>);
  } catch (error) {
    throw toUpstreamError(target, error, Anthropic, true);
  }
}
