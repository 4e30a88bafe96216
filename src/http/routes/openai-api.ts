import type { Response } from "express";
import { z } from "zod";
import type { ChatPipeline } from "../../chat/pipeline";
import { chatRequestSchema, embeddingRequestSchema, textCompletionRequestSchema } from "../../chat/request";
import type { Targets } from "../../chat/targets";
import { NotFoundError } from "../../errors";
import type { Logger } from "../../log";
import type { MemoryService } from "../../memory";
import { jsonTextOf } from "../../providers";
import { ApiRouter, json } from "../api-router";
import { chatInputFrom } from "../chat-input";
import { clientGoneSignal } from "../client-signal";
import { toApiError } from "../error-handler";
import { principalOf } from "../guards";
import { requestIdsOf } from "../request-context";
import {
  ChatCompletion,
  ChatCompletionChunk,
  EmbeddingList,
  listOf,
  MEMORY_REQUEST_HEADERS,
  MEMORY_RESPONSE_HEADERS,
  Model,
  RATE_LIMIT_HEADERS,
  TextCompletion,
} from "../schemas";
import { SseWriter } from "../sse";

export interface OpenAiRoutesDeps {
  memory: MemoryService;
  targets: Targets;
  chat: ChatPipeline;
  logger: Logger;
}

/** A provider's answer as JSON: its own text when it passed through unchanged (providers/wire.ts). */
const sendAnswer = (res: Response, answer: object) => res.type("application/json").send(jsonTextOf(answer));

/** The OpenAI-compatible endpoints: thin adapters between HTTP and the chat pipeline. */
export function openAiRoutes({ targets, chat, memory, logger }: OpenAiRoutesDeps): ApiRouter {
  const api = new ApiRouter("OpenAI-compatible");

  api.route(
    {
      method: "post",
      path: "/chat/completions",
      summary: "Create a chat completion (streamed or not) with the caller's provider key or the local model",
      description:
        "The model picks the provider (config/models.json, or a `provider/model` name). Usage and cost are recorded.",
      access: "api_key",
      bodyCheckedElsewhere: { schema: chatRequestSchema, by: "pipeline" },
      requestHeaders: MEMORY_REQUEST_HEADERS,
      responses: {
        200: {
          description: "The completion; with `stream: true`, server-sent events of chunks ending with `data: [DONE]`.",
          content: { "application/json": ChatCompletion, "text/event-stream": ChatCompletionChunk },
          headers: [...RATE_LIMIT_HEADERS, ...MEMORY_RESPONSE_HEADERS],
        },
      },
      errors: [402, 403, 404, 429, 502, 503, 504],
    },
    async (_input, res, req) => {
      const input = chatInputFrom(
        req,
        res,
        { chat, memory },
        {
          principal: principalOf(res),
          body: req.body,
          endpoint: "/v1/chat/completions",
        },
      );
      const result = await chat.run(input);
      res.set(result.headers);
      if (!result.stream) {
        sendAnswer(res, result.completion);
        return;
      }
      await relay(res, result.chunks, input.signal, logger);
    },
  );

  api.route(
    {
      method: "post",
      path: "/completions",
      summary: "Create a legacy text completion (providers that serve /completions: OpenAI, vLLM, Together, ...)",
      description:
        "Passed to the provider's own /completions with the caller's key; limits and usage as for chat. No memory: " +
        "the prompt is raw text, not a conversation. Providers without text completions (Anthropic) answer 400.",
      access: "api_key",
      bodyCheckedElsewhere: { schema: textCompletionRequestSchema, by: "pipeline" },
      responses: {
        200: {
          description: "The completion; with `stream: true`, server-sent events of chunks ending with `data: [DONE]`.",
          content: { "application/json": TextCompletion, "text/event-stream": TextCompletion },
          headers: RATE_LIMIT_HEADERS,
        },
      },
      errors: [402, 404, 429, 502, 503, 504],
    },
    async (_input, res, req) => {
      const signal = clientGoneSignal(res);
      const result = await chat.completeText({
        principal: principalOf(res),
        body: req.body,
        ...requestIdsOf(res),
        conversationId: null,
        endpoint: "/v1/completions",
        signal,
      });
      res.set(result.headers);
      if (!result.stream) {
        sendAnswer(res, result.completion);
        return;
      }
      await relay(res, result.chunks, signal, logger);
    },
  );

  api.route(
    {
      method: "post",
      path: "/embeddings",
      summary: "Create embeddings with the caller's provider key or the local embedding model",
      access: "api_key",
      bodyCheckedElsewhere: { schema: embeddingRequestSchema, by: "pipeline" },
      responses: { 200: { description: "The embeddings.", content: json(EmbeddingList), headers: RATE_LIMIT_HEADERS } },
      errors: [402, 404, 429, 502, 503, 504],
    },
    async (_input, res, req) => {
      const { headers, response } = await chat.embed({
        principal: principalOf(res),
        body: req.body,
        ...requestIdsOf(res),
        conversationId: null,
        endpoint: "/v1/embeddings",
        signal: clientGoneSignal(res),
      });
      sendAnswer(res.set(headers), response);
    },
  );

  api.route(
    {
      method: "get",
      path: "/models",
      summary: "List the models the caller can use (providers with a stored key, or the local models)",
      access: "api_key",
      responses: { 200: { description: "The models.", content: json(listOf(Model)) } },
    },
    async (_input, res) => {
      const models = await targets.models(principalOf(res));
      res.json({
        object: "list",
        data: models.map((m) => ({ id: m.id, object: "model", created: 0, owned_by: m.owned_by })),
      });
    },
  );

  api.route(
    {
      method: "get",
      path: "/models/:model",
      summary: "Describe one model",
      access: "api_key",
      params: z.object({ model: z.string() }),
      responses: { 200: { description: "The model.", content: json(Model) } },
      errors: [404],
    },
    async ({ params }, res) => {
      const model = (await targets.models(principalOf(res))).find((m) => m.id === params.model);
      if (!model) {
        throw new NotFoundError(`The model '${params.model}' does not exist or you do not have access to it.`, {
          code: "model_not_found",
          param: "model",
        });
      }
      res.json({ id: model.id, object: "model", created: 0, owned_by: model.owned_by });
    },
  );

  return api;
}

/** Relays OpenAI-style chunks as SSE, ending with `data: [DONE]`; an error after the headers becomes one data event
 * (the SDKs raise it as an APIError), then the end. */
async function relay(res: Response, chunks: AsyncIterable<object>, signal: AbortSignal, logger: Logger) {
  const sse = new SseWriter(res);
  sse.open();
  try {
    for await (const chunk of chunks) {
      if (sse.closed) break;
      await sse.data(chunk);
    }
    sse.end("data: [DONE]\n\n");
  } catch (error) {
    if (signal.aborted) return;
    await sse.data(toApiError(error, logger).toBody());
    sse.end();
  }
}
