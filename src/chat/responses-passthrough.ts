import type { ChatChunk, ChatCompletion, ChatUsage, ProviderAdapter } from "../providers";
import { brokenStream } from "../providers/errors";
import { createResponse, type ResponsesPayload, streamResponse } from "../providers/openai/responses";
import type { ChatMessage, ResponseContext, ResponsesRequest } from "./responses";

/**
 * A Responses request for OpenAI itself is passed through to OpenAI's `/responses` (its built-in tools, reasoning
 * items and formats intact) while still running through the chat pipeline: the pipeline sees a chat completion (or
 * chunks) made from OpenAI's answer — for limits, memory, usage, cache and write-back — and each carries the
 * original Response (or event) under RAW, which the route returns to the client with Perpetual's ids.
 */
export const RAW = Symbol("the Responses API payload this was made from");

export type WithRaw<T> = T & { [RAW]?: ResponsesPayload };

/** Handled by Perpetual, never sent upstream: chaining and storage are Perpetual's (OpenAI's `store` is off). */
const NOT_FORWARDED = new Set(["previous_response_id", "store", "stream", "input", "instructions", "stream_options"]);

/**
 * OpenAI's Response (or an event carrying one) as the client sees it: Perpetual's id, chain and storage, and the
 * request's own instructions and metadata (OpenAI saw the instructions as an input item, and stored nothing).
 */
export function asOurs(context: ResponseContext, payload: ResponsesPayload): Record<string, unknown> {
  const { request } = context;
  const rewrite = (response: ResponsesPayload) => ({
    ...response,
    id: context.id,
    previous_response_id: request.previous_response_id ?? null,
    store: request.store !== false,
    instructions: request.instructions ?? null,
    metadata: request.metadata ?? {},
  });
  if (payload.type === undefined) return rewrite(payload);
  return payload.response ? { ...payload, response: rewrite(payload.response as ResponsesPayload) } : payload;
}

/** The adapter the pipeline calls for this request instead of the chat one. */
export function passThroughAdapter(request: ResponsesRequest): Pick<ProviderAdapter, "complete" | "stream"> {
  return {
    async complete(target, chatBody, options) {
      const response = await createResponse(target, upstreamBody(request, chatBody), options);
      return Object.assign(completionOf(response), { [RAW]: response });
    },
    async stream(target, chatBody, options) {
      const events = await streamResponse(target, upstreamBody(request, chatBody), options);
      return chunksOf(target, events);
    },
  };
}

/**
 * OpenAI's request: the client's fields as sent, with `input` rebuilt from the chat messages the pipeline hands over
 * (instructions, any recalled memory, the stored conversation, this input) and nothing stored at OpenAI.
 */
function upstreamBody(request: ResponsesRequest, chatBody: { messages?: unknown }): Record<string, unknown> {
  const forwarded = Object.fromEntries(Object.entries(request).filter(([k]) => !NOT_FORWARDED.has(k)));
  return { ...forwarded, input: inputItems((chatBody.messages ?? []) as ChatMessage[]), store: false };
}

/** Chat messages as Responses input items. */
function inputItems(messages: readonly ChatMessage[]): Record<string, unknown>[] {
  const items: Record<string, unknown>[] = [];
  for (const m of messages) {
    if (m.role === "tool") {
      items.push({ type: "function_call_output", call_id: m.tool_call_id, output: textOf(m.content) });
      continue;
    }
    if (m.role === "user" && Array.isArray(m.content)) {
      items.push({ role: "user", content: (m.content as Array<Record<string, unknown>>).map(inputPart) });
    } else if (m.content != null && m.content !== "") {
      items.push({ role: m.role, content: textOf(m.content) });
    }
    for (const call of (m.tool_calls as Array<{ id: string; function: { name: string; arguments: string } }>) ?? []) {
      items.push({
        type: "function_call",
        call_id: call.id,
        name: call.function.name,
        arguments: call.function.arguments,
      });
    }
  }
  return items;
}

function inputPart(part: Record<string, unknown>): Record<string, unknown> {
  if (part.type === "image_url") {
    const image = part.image_url as { url: string; detail?: string };
    return { type: "input_image", image_url: image.url, ...(image.detail && { detail: image.detail }) };
  }
  return { type: "input_text", text: String(part.text ?? "") };
}

const textOf = (content: unknown): string =>
  typeof content === "string"
    ? content
    : Array.isArray(content)
      ? content.map((p: { text?: unknown }) => String(p.text ?? "")).join("")
      : "";

/** The chat completion a Response amounts to: its text, function calls, finish and usage. */
function completionOf(response: ResponsesPayload): ChatCompletion {
  const items = (response.output ?? []) as Array<Record<string, unknown>>;
  const text = items
    .filter((item) => item.type === "message")
    .flatMap((item) => item.content as Array<{ type: string; text?: string; refusal?: string }>)
    .map((part) => part.text ?? part.refusal ?? "")
    .join("");
  const toolCalls = items
    .filter((item) => item.type === "function_call")
    .map((item) => ({
      id: String(item.call_id),
      type: "function" as const,
      function: { name: String(item.name), arguments: String(item.arguments ?? "") },
    }));
  const usage = usageOf(response.usage);
  return {
    id: String(response.id),
    object: "chat.completion",
    created: Number(response.created_at ?? 0),
    model: String(response.model ?? ""),
    choices: [
      {
        index: 0,
        message: {
          role: "assistant",
          content: text || null,
          refusal: null,
          ...(toolCalls.length > 0 && { tool_calls: toolCalls }),
        },
        finish_reason: response.status === "incomplete" ? "length" : toolCalls.length > 0 ? "tool_calls" : "stop",
        logprobs: null,
      },
    ],
    ...(usage && { usage }),
  };
}

function usageOf(raw: unknown): ChatUsage | undefined {
  const u = raw as
    | {
        input_tokens: number;
        output_tokens: number;
        total_tokens?: number;
        input_tokens_details?: { cached_tokens?: number };
        output_tokens_details?: { reasoning_tokens?: number };
      }
    | null
    | undefined;
  if (!u) return undefined;
  return {
    prompt_tokens: u.input_tokens,
    completion_tokens: u.output_tokens,
    total_tokens: u.total_tokens ?? u.input_tokens + u.output_tokens,
    prompt_tokens_details: { cached_tokens: u.input_tokens_details?.cached_tokens ?? 0 },
    completion_tokens_details: { reasoning_tokens: u.output_tokens_details?.reasoning_tokens ?? 0 },
  };
}

/**
 * OpenAI's events as chat chunks, each carrying its event under RAW: text deltas as content, finished function
 * calls as tool calls, the final response as the finish reason and usage; every other event as an empty chunk (so
 * it still reaches the client). A failure event ends the stream as the provider's failure.
 */
async function* chunksOf(
  target: Parameters<ProviderAdapter["stream"]>[0],
  events: AsyncIterable<ResponsesPayload>,
): AsyncIterable<WithRaw<ChatChunk>> {
  let id = "";
  let model = "";
  let calls = 0;
  for await (const event of events) {
    const response = event.response as ResponsesPayload | undefined;
    if (response?.id) id = String(response.id);
    if (response?.model) model = String(response.model);
    if (event.type === "error") throw brokenStream(target, String(event.message ?? "stream error"));
    if (event.type === "response.failed") {
      const error = response?.error as { message?: string } | undefined;
      throw brokenStream(target, error?.message ?? "the response failed");
    }
    const chunk: WithRaw<ChatChunk> = {
      id,
      object: "chat.completion.chunk",
      created: 0,
      model,
      choices: [],
      [RAW]: event,
    };
    const item = event.item as Record<string, unknown> | undefined;
    if (event.type === "response.output_text.delta") {
      chunk.choices = [
        { index: 0, delta: { content: String(event.delta ?? "") }, finish_reason: null, logprobs: null },
      ];
    } else if (event.type === "response.output_item.done" && item?.type === "function_call") {
      const call = {
        index: calls++,
        id: String(item.call_id),
        type: "function" as const,
        function: { name: String(item.name), arguments: String(item.arguments ?? "") },
      };
      chunk.choices = [{ index: 0, delta: { tool_calls: [call] }, finish_reason: null, logprobs: null }];
    } else if ((event.type === "response.completed" || event.type === "response.incomplete") && response) {
      const completion = completionOf(response);
      chunk.choices = [{ index: 0, delta: {}, finish_reason: completion.choices[0]!.finish_reason, logprobs: null }];
      if (completion.usage) chunk.usage = completion.usage;
    }
    yield chunk;
  }
}
