import type { Response } from "express";
import { z } from "zod";
import type { ChatPipeline } from "../../chat/pipeline";
import { ResponseStore } from "../../chat/response-store";
import {
  type ChatMessage,
  ChatToResponseEvents,
  inputMessages,
  outputMessages,
  type ResponseContext,
  type ResponsesRequest,
  toChatRequest,
  toResponse,
} from "../../chat/responses";
import { asOurs, passThroughAdapter, RAW, type WithRaw } from "../../chat/responses-passthrough";
import type { Targets } from "../../chat/targets";
import type { Database } from "../../db";
import { InvalidRequestError, NotFoundError } from "../../errors";
import type { Logger } from "../../log";
import type { MemoryService } from "../../memory";
import type { ChatChunk } from "../../providers";
import { idOf } from "../../validation";
import { ApiRouter, json } from "../api-router";
import { chatInputFrom } from "../chat-input";
import { toApiError } from "../error-handler";
import { principalOf } from "../guards";
import { requestIdOf } from "../request-context";
import {
  MEMORY_REQUEST_HEADERS,
  MEMORY_RESPONSE_HEADERS,
  RATE_LIMIT_HEADERS,
  ResponseObject,
  ResponseStreamEvent,
} from "../schemas";
import { SseWriter } from "../sse";

const inputItem = z.looseObject({ type: z.string().optional() });
const responsesRequestSchema = z
  .looseObject({
    model: z.string().trim().min(1, { message: "is required" }),
    input: z.union([z.string(), z.array(inputItem).min(1)]),
    instructions: z.string().nullish(),
    tools: z.array(z.looseObject({ type: z.string() })).optional(),
    text: z.looseObject({ format: z.looseObject({ type: z.string() }).optional() }).nullish(),
    max_output_tokens: z.int().positive().nullish(),
    metadata: z.record(z.string().max(64), z.string().max(512)).nullish(),
    stream: z.boolean().nullish(),
    store: z.boolean().nullish(),
    previous_response_id: z.string().max(200).nullish(),
  })
  .meta({
    id: "ResponseCreateRequest",
    description:
      "OpenAI's Responses API request. Function tools, text/json_schema formats, previous_response_id and store " +
      "work with every provider; built-in tools (web search, file search, ...) are refused with a 400.",
  });

/** Response ids: `resp_` and the request's own 32 hex digits, so a response and its usage row share an id. */
const responseMessage = (id: string) => `Response with id '${id}' not found.`;
const responseIdParams = z.object({
  id: idOf({ what: "response", pattern: /^resp_[0-9a-f]{32}$/, message: responseMessage, param: "id" }),
});

export interface ResponsesRoutesDeps {
  targets: Targets;
  memory: MemoryService;
  chat: ChatPipeline;
  logger: Logger;
  db: Database;
}

/**
 * POST /v1/responses (OpenAI's Responses API, JSON and typed SSE events) in front of the chat pipeline, so every
 * provider, memory, limits and usage rows work as for chat completions; GET and DELETE /v1/responses/{id} for
 * stored responses.
 */
export function responsesRoutes({ targets, chat, memory, logger, db }: ResponsesRoutesDeps): ApiRouter {
  const api = new ApiRouter("OpenAI-compatible");
  const store = new ResponseStore(db);

  api.route(
    {
      method: "post",
      path: "/responses",
      summary: "Create a model response (OpenAI's Responses API) with the caller's provider key or the local model",
      description:
        "Translated to a chat completion, so it works with every provider. With `store` (the default) the response " +
        "is kept for GET /v1/responses/{id} and for `previous_response_id`.",
      access: "api_key",
      body: responsesRequestSchema,
      requestHeaders: MEMORY_REQUEST_HEADERS,
      responses: {
        200: {
          description: "The response; with `stream: true`, typed server-sent events ending with response.completed.",
          content: { "application/json": ResponseObject, "text/event-stream": ResponseStreamEvent },
          headers: [...RATE_LIMIT_HEADERS, ...MEMORY_RESPONSE_HEADERS],
        },
      },
      errors: [402, 404, 429, 502, 503, 504],
    },
    async ({ body: parsed }, res, req) => {
      const principal = principalOf(res);
      const request = parsed as ResponsesRequest;
      const previous = request.previous_response_id
        ? await store.get(principal.userId, request.previous_response_id)
        : undefined;
      if (request.previous_response_id && !previous) {
        throw new InvalidRequestError(`Previous response with id '${request.previous_response_id}' not found.`, {
          code: "previous_response_not_found",
          param: "previous_response_id",
        });
      }
      const history = previous?.conversation ?? [];
      // OpenAI itself serves the Responses API: passed through (its built-in tools and formats intact); any other
      // provider gets a chat completion. An unknown model is left to the pipeline (a 404 with a usage row).
      const passThrough = servesResponsesApi(targets, request.model);
      const body = toChatRequest(request, history, { passThrough });
      // The usage chunk is needed for response.completed's usage: ask for it through the pipeline.
      if (request.stream) body.stream_options = { include_usage: true };
      const context: ResponseContext = {
        id: `resp_${requestIdOf(res).replace(/^req_/, "")}`,
        createdAt: Math.floor(Date.now() / 1000),
        request,
      };
      // What a follow-up continues: the earlier conversation, this input, then (once known) this output.
      const conversation = [...history, ...inputMessages(request.input)];
      const keep = async (response: Record<string, unknown>) => {
        if (request.store === false) return;
        try {
          await store.save(principal.userId, {
            response,
            conversation: [...conversation, ...outputMessages(response)] as ChatMessage[],
          });
        } catch (error) {
          // The answer was produced and billed: the client gets it; only the stored copy is missing.
          logger.warn("response not stored", { response_id: context.id, error });
        }
      };
      const input = chatInputFrom(req, res, { chat, memory }, { principal, body, endpoint: "/v1/responses" });
      if (passThrough) input.adapter = passThroughAdapter(request);
      const result = await chat.run(input);
      res.set(result.headers);
      if (!result.stream) {
        const raw = (result.completion as WithRaw<typeof result.completion>)[RAW];
        const response = raw ? asOurs(context, raw) : toResponse(context, result.completion);
        await keep(response);
        res.json(response);
        return;
      }
      await relayEvents(res, result.chunks, context, keep, input.signal, logger);
    },
  );

  api.route(
    {
      method: "get",
      path: "/responses/:id",
      summary: "Retrieve a stored response (created with store, the caller's own)",
      access: "api_key",
      params: responseIdParams,
      responses: { 200: { description: "The response as it was returned.", content: json(ResponseObject) } },
      errors: [404],
    },
    async ({ params: { id } }, res) => {
      const stored = await store.get(principalOf(res).userId, id);
      if (!stored) throw responseNotFound(id);
      res.json(stored.response);
    },
  );

  api.route(
    {
      method: "delete",
      path: "/responses/:id",
      summary: "Delete a stored response (the caller's own)",
      access: "api_key",
      params: responseIdParams,
      responses: {
        200: {
          description: "Deleted.",
          content: json(
            z
              .strictObject({ id: z.string(), object: z.literal("response"), deleted: z.literal(true) })
              .meta({ id: "ResponseDeleted" }),
          ),
        },
      },
      errors: [404],
    },
    async ({ params: { id } }, res) => {
      if (!(await store.delete(principalOf(res).userId, id))) throw responseNotFound(id);
      res.json({ id, object: "response", deleted: true });
    },
  );

  return api;
}

/**
 * A response's stream as typed events: translated chunks get Perpetual's own events, passed-through ones carry
 * OpenAI's (a cache hit replays chunks without them, so the translation also serves a passed-through request
 * answered from the cache). The response is stored (`keep`) before its last event.
 */
async function relayEvents(
  res: Response,
  chunks: AsyncIterable<ChatChunk>,
  context: ResponseContext,
  keep: (response: Record<string, unknown>) => Promise<void>,
  signal: AbortSignal,
  logger: Logger,
): Promise<void> {
  const sse = new SseWriter(res);
  sse.open();
  const events = new ChatToResponseEvents(context);
  const send = async (list: Array<{ type: string }>) => {
    for (const event of list) await sse.event(event.type, event);
  };
  let translating = false;
  let passedThrough = false;
  const startTranslation = async () => {
    if (!translating) await send(events.start());
    translating = true;
  };
  try {
    for await (const chunk of chunks) {
      if (sse.closed) break;
      const raw = (chunk as WithRaw<typeof chunk>)[RAW];
      if (!raw) {
        await startTranslation();
        await send(events.translate(chunk));
        continue;
      }
      passedThrough = true;
      const event = asOurs(context, raw);
      const final = event.type === "response.completed" || event.type === "response.incomplete";
      if (final && !sse.closed) await keep(event.response as Record<string, unknown>);
      await send([event as { type: string }]);
    }
    if (!passedThrough) {
      await startTranslation();
      const finished = events.finish();
      if (!sse.closed) await keep(finished.response);
      await send(finished.events);
    }
  } catch (error) {
    if (!signal.aborted) {
      const { code, message, param } = toApiError(error, logger);
      await send(events.fail({ code, message, param }));
    }
  }
  sse.end();
}

/** Whether the model's provider is OpenAI itself (the one that serves /responses); false for an unknown model. */
function servesResponsesApi(targets: Targets, model: string): boolean {
  try {
    return targets.route(model).provider.kind === "openai";
  } catch {
    return false;
  }
}

/** A malformed id cannot name a response: 404, as for one that is not the caller's. */
const responseNotFound = (id: string) =>
  new NotFoundError(responseMessage(id), { code: "response_not_found", param: "id" });
