import { z } from "zod";
import type { ChatPipeline } from "../../chat/pipeline";
import type { Targets } from "../../chat/targets";
import type { Config } from "../../config";
import type { Logger } from "../../log";
import type { MemoryService } from "../../memory";
import { adapterFor } from "../../providers";
import {
  type AnthropicRequest,
  fromAnthropicRequest,
  OpenAIToAnthropicStream,
  toAnthropicMessage,
} from "../../providers/anthropic/translate";
import { estimatePromptTokens, estimateTokens } from "../../providers/tokens";
import { ApiRouter, json } from "../api-router";
import { chatInputFrom } from "../chat-input";
import { clientGoneSignal } from "../client-signal";
import { anthropicErrorBody, toApiError } from "../error-handler";
import { principalOf } from "../guards";
import { requestIdOf } from "../request-context";
import {
  AnthropicMessage,
  AnthropicStreamEvent,
  MEMORY_REQUEST_HEADERS,
  MEMORY_RESPONSE_HEADERS,
  RATE_LIMIT_HEADERS,
} from "../schemas";
import { SseWriter } from "../sse";

const anthropicRequestSchema = z
  .looseObject({
    model: z.string().trim().min(1, { message: "is required" }),
    max_tokens: z.number().int().positive(),
    messages: z
      .array(
        z.looseObject({
          role: z.enum(["user", "assistant"]),
          content: z.union([z.string(), z.array(z.looseObject({ type: z.string() }))]),
        }),
      )
      .min(1),
    system: z.union([z.string(), z.array(z.looseObject({ type: z.string() }))]).optional(),
    stream: z.boolean().optional(),
  })
  .meta({ id: "AnthropicMessageRequest", description: "Anthropic's Messages API request." });

const countTokensSchema = z
  .looseObject({
    model: z.string().trim().min(1, { message: "is required" }),
    messages: anthropicRequestSchema.shape.messages,
    system: anthropicRequestSchema.shape.system,
    tools: z.array(z.looseObject({ name: z.string() })).optional(),
  })
  .meta({ id: "AnthropicCountTokensRequest", description: "Anthropic's count_tokens request." });

export interface AnthropicRoutesDeps {
  memory: MemoryService;
  chat: ChatPipeline;
  targets: Targets;
  config: Pick<Config, "http">;
  logger: Logger;
}

/** POST /v1/messages: Anthropic's Messages API in front of any provider, translated to and from the chat pipeline. */
export function anthropicRoutes({ chat, memory, targets, config, logger }: AnthropicRoutesDeps): ApiRouter {
  const api = new ApiRouter("Anthropic-compatible");

  api.route(
    {
      method: "post",
      path: "/messages/count_tokens",
      summary: "Count a Messages request's input tokens: Anthropic's own count for Claude models, else an estimate",
      description:
        "Claude models: passed to Anthropic's count_tokens with the caller's Anthropic key. Other models: estimated " +
        "with a real tokenizer (o200k_base) over the request translated to chat messages, tools included. Not " +
        "metered (no usage row, no rate-limit charge), as with Anthropic.",
      access: "api_key",
      body: countTokensSchema,
      responses: {
        200: {
          description: "The count.",
          content: json(z.strictObject({ input_tokens: z.int().nonnegative() }).meta({ id: "AnthropicTokenCount" })),
        },
      },
      errors: [404, 429, 502, 503, 504],
      anthropicErrors: true,
    },
    async ({ body: request }, res) => {
      const principal = principalOf(res);
      const route = targets.route(request.model);
      const { countTokens } = adapterFor(route.provider);
      if (!countTokens) {
        const chat = fromAnthropicRequest({ ...request, max_tokens: 1 } as unknown as AnthropicRequest);
        const tools = request.tools ? estimateTokens(JSON.stringify(request.tools)) : 0;
        res.json({ input_tokens: estimatePromptTokens(chat.messages as Array<{ content?: unknown }>) + tools });
        return;
      }
      const options = { signal: clientGoneSignal(res), timeoutMs: config.http.requestTimeoutMs };
      const destination = await targets.prepare(principal, route);
      const placed = await destination.place((target) => countTokens(target, request, options));
      placed.release();
      res.json({ input_tokens: placed.value });
    },
  );

  api.route(
    {
      method: "post",
      path: "/messages",
      summary: "Anthropic's Messages API in front of any provider (the key may also be sent as x-api-key)",
      access: "api_key",
      body: anthropicRequestSchema,
      requestHeaders: MEMORY_REQUEST_HEADERS,
      responses: {
        200: {
          description: "The message; with `stream: true`, Anthropic's server-sent events.",
          content: { "application/json": AnthropicMessage, "text/event-stream": AnthropicStreamEvent },
          headers: [...RATE_LIMIT_HEADERS, ...MEMORY_RESPONSE_HEADERS],
        },
      },
      errors: [402, 403, 404, 429, 502, 503, 504],
      anthropicErrors: true,
    },
    async ({ body: parsed }, res, req) => {
      const principal = principalOf(res);
      const request = parsed as unknown as AnthropicRequest;
      const body = fromAnthropicRequest(request);
      // The usage chunk is needed for message_delta's usage: ask for it through the pipeline.
      if (request.stream) Object.assign(body, { stream_options: { include_usage: true } });
      const input = chatInputFrom(req, res, { chat, memory }, { principal, body, endpoint: "/v1/messages" });
      const { signal } = input;
      const result = await chat.run(input);
      res.set(result.headers);
      if (!result.stream) {
        res.json(toAnthropicMessage(result.completion));
        return;
      }
      const sse = new SseWriter(res);
      sse.open();
      const translator = new OpenAIToAnthropicStream(`msg_${requestIdOf(res).replace(/^req_/, "")}`, request.model);
      try {
        for await (const chunk of result.chunks) {
          if (sse.closed) break;
          for (const event of translator.translate(chunk)) await sse.event(String(event.type), event);
        }
        for (const event of translator.finish()) await sse.event(String(event.type), event);
      } catch (error) {
        if (!signal.aborted) await sse.event("error", anthropicErrorBody(toApiError(error, logger)));
      }
      sse.end();
    },
  );

  return api;
}
