import { InvalidRequestError } from "../errors";
import type { ChatChunk, ChatCompletion, ChatUsage } from "../providers";

/**
 * OpenAI's Responses API in front of the chat pipeline (so in front of every provider): a request is translated to
 * a chat completion request, the completion (or its chunks) back to a Response (or its typed events). Pure
 * functions; storage of responses for `previous_response_id` lives in ./response-store.ts. Every request field is
 * mapped, rejected with a 400 naming it, or listed in docs/PROXY.md as accepted and not forwarded.
 */

/** The request as the route's schema lets it through (loose: unknown fields are checked here). */
export interface ResponsesRequest {
  model: string;
  input: string | ResponseInputItem[];
  instructions?: string | null;
  tools?: Array<Record<string, unknown>>;
  tool_choice?: unknown;
  text?: { format?: Record<string, unknown>; verbosity?: string } | null;
  max_output_tokens?: number | null;
  metadata?: Record<string, string> | null;
  stream?: boolean | null;
  store?: boolean | null;
  previous_response_id?: string | null;
  temperature?: number | null;
  top_p?: number | null;
  parallel_tool_calls?: boolean | null;
  user?: string;
  reasoning?: { effort?: string | null; summary?: string | null } | null;
  [field: string]: unknown;
}

export type ResponseInputItem = Record<string, unknown> & { type?: string };

/** A chat message as the pipeline takes it. */
export type ChatMessage = Record<string, unknown> & { role: string };

/** Passed to the chat request as they are (same name and meaning in Chat Completions). */
const PASSED_THROUGH = [
  "temperature",
  "top_p",
  "parallel_tool_calls",
  "user",
  "service_tier",
  "prompt_cache_key",
  "safety_identifier",
  "top_logprobs",
] as const;
/** Accepted and handled by Perpetual itself, or accepted and not forwarded (documented). */
const HANDLED = new Set([
  "model",
  "input",
  "instructions",
  "tools",
  "tool_choice",
  "text",
  "max_output_tokens",
  "metadata",
  "stream",
  "store",
  "previous_response_id",
  "reasoning",
  "truncation",
  "include",
  "stream_options",
  ...PASSED_THROUGH,
]);
/** Features a chat completion cannot carry: a 400 rather than a silent difference. */
const UNSUPPORTED: Record<string, string> = {
  background: "Background responses are not supported.",
  conversation: "Conversations objects are not supported; chain responses with previous_response_id.",
  prompt: "Stored prompt templates are not supported.",
  max_tool_calls: "max_tool_calls is not supported.",
  context_management: "context_management is not supported.",
};

/**
 * The chat completion request for a Responses request: `history` is the conversation of the response named by
 * `previous_response_id` (its input and output as chat messages), `instructions` come first as a system message and
 * are not inherited from earlier responses (as OpenAI does).
 */
export function toChatRequest(
  request: ResponsesRequest,
  history: readonly ChatMessage[],
  { passThrough = false }: { passThrough?: boolean } = {},
): Record<string, unknown> {
  for (const [field, message] of Object.entries(UNSUPPORTED)) {
    // Passed through, OpenAI takes max_tool_calls itself; the others conflict with Perpetual's own storage.
    if (passThrough && field === "max_tool_calls") continue;
    if (request[field] !== undefined && request[field] !== null && request[field] !== false) {
      throw new InvalidRequestError(message, { code: "unsupported_parameter", param: field });
    }
  }
  const messages: ChatMessage[] = [];
  if (request.instructions) messages.push({ role: "system", content: request.instructions });
  messages.push(...history, ...inputMessages(request.input));
  if (passThrough) {
    // OpenAI gets the request's own fields (built-in tools, formats, include, …): the chat body carries them only
    // so that limits, the guard and the cache key see them.
    const {
      input: _input,
      instructions: _instructions,
      previous_response_id: _previous,
      store: _store,
      ...rest
    } = request;
    return {
      ...rest,
      messages,
      stream: request.stream === true,
      ...(request.max_output_tokens != null && { max_completion_tokens: request.max_output_tokens }),
    };
  }
  for (const field of Object.keys(request)) {
    if (!HANDLED.has(field) && !(field in UNSUPPORTED)) {
      throw new InvalidRequestError(`Unrecognized request argument supplied: ${field}`, {
        code: "unknown_parameter",
        param: field,
      });
    }
  }
  const body: Record<string, unknown> = { model: request.model, messages, stream: request.stream === true };
  for (const field of PASSED_THROUGH)
    if (request[field] !== undefined && request[field] !== null) body[field] = request[field];
  if (body.top_logprobs !== undefined) body.logprobs = true;
  if (request.max_output_tokens != null) body.max_completion_tokens = request.max_output_tokens;
  if (request.reasoning?.effort) body.reasoning_effort = request.reasoning.effort;
  if (request.tools?.length) body.tools = request.tools.map(chatTool);
  if (request.tool_choice !== undefined) body.tool_choice = chatToolChoice(request.tool_choice);
  const format = request.text?.format;
  if (format) body.response_format = chatResponseFormat(format);
  if (request.text?.verbosity) body.verbosity = request.text.verbosity;
  return body;
}

/** Input items (or a string) as chat messages; consecutive function calls share one assistant message. */
export function inputMessages(input: ResponsesRequest["input"]): ChatMessage[] {
  if (typeof input === "string") return [{ role: "user", content: input }];
  const messages: ChatMessage[] = [];
  input.forEach((item, i) => {
    const param = `input[${i}]`;
    const type = item.type ?? "message";
    if (type === "message") {
      messages.push(chatMessage(item, param));
    } else if (type === "function_call") {
      const call = {
        id: String(item.call_id ?? ""),
        type: "function",
        function: { name: String(item.name ?? ""), arguments: String(item.arguments ?? "") },
      };
      // A call right after an assistant turn (its text, or another call) belongs to that turn.
      const last = messages.at(-1);
      if (last?.role === "assistant") {
        last.tool_calls = [...((last.tool_calls as unknown[] | undefined) ?? []), call];
      } else {
        messages.push({ role: "assistant", content: null, tool_calls: [call] });
      }
    } else if (type === "function_call_output") {
      const output = item.output;
      messages.push({
        role: "tool",
        tool_call_id: String(item.call_id ?? ""),
        content: typeof output === "string" ? output : textOf(output, `${param}.output`),
      });
    } else if (type === "reasoning") {
      // Reasoning items from an earlier response: chat completions cannot take them back (dropped, documented).
    } else {
      throw new InvalidRequestError(`Input items of type '${type}' are not supported.`, {
        code: "unsupported_input_item",
        param: `${param}.type`,
      });
    }
  });
  return messages;
}

function chatMessage(item: ResponseInputItem, param: string): ChatMessage {
  const role = item.role;
  if (role !== "user" && role !== "assistant" && role !== "system" && role !== "developer") {
    throw new InvalidRequestError(`Invalid role '${String(role)}'.`, { code: "invalid_value", param: `${param}.role` });
  }
  const content = item.content;
  if (typeof content === "string") return { role, content };
  if (!Array.isArray(content))
    throw new InvalidRequestError("content must be a string or an array.", {
      code: "invalid_value",
      param: `${param}.content`,
    });
  // Assistant turns (earlier output) are text in chat completions; user turns keep images.
  if (role !== "user") return { role, content: textOf(content, `${param}.content`) };
  return {
    role,
    content: content.map((part: Record<string, unknown>, j: number) => {
      const at = `${param}.content[${j}]`;
      if (part.type === "input_text") return { type: "text", text: String(part.text ?? "") };
      if (part.type === "input_image") {
        if (typeof part.image_url !== "string") {
          throw new InvalidRequestError("Only input_image with an image_url is supported (not file_id).", {
            code: "unsupported_parameter",
            param: at,
          });
        }
        return {
          type: "image_url",
          image_url: { url: part.image_url, ...(part.detail ? { detail: part.detail } : {}) },
        };
      }
      throw new InvalidRequestError(`Content parts of type '${String(part.type)}' are not supported.`, {
        code: "unsupported_content",
        param: `${at}.type`,
      });
    }),
  };
}

/** The text of content parts (input_text, output_text, refusal), joined. */
function textOf(content: unknown, param: string): string {
  if (!Array.isArray(content))
    throw new InvalidRequestError("content must be a string or an array.", { code: "invalid_value", param: param });
  return content
    .map((part: Record<string, unknown>, j: number) => {
      if (part.type === "input_text" || part.type === "output_text") return String(part.text ?? "");
      if (part.type === "refusal") return String(part.refusal ?? "");
      throw new InvalidRequestError(`Content parts of type '${String(part.type)}' are not supported here.`, {
        code: "unsupported_content",
        param: `${param}[${j}].type`,
      });
    })
    .join("");
}

function chatTool(tool: Record<string, unknown>, i: number): Record<string, unknown> {
  if (tool.type !== "function") {
    throw new InvalidRequestError(`Tools of type '${String(tool.type)}' are not supported; only function tools are.`, {
      code: "unsupported_tool",
      param: `tools[${i}].type`,
    });
  }
  const { name, description, parameters, strict } = tool;
  return {
    type: "function",
    function: {
      name,
      ...(description != null && { description }),
      ...(parameters != null && { parameters }),
      ...(strict != null && { strict }),
    },
  };
}

function chatToolChoice(choice: unknown): unknown {
  if (choice === "auto" || choice === "none" || choice === "required") return choice;
  const c = choice as { type?: string; name?: string } | null;
  if (c?.type === "function" && typeof c.name === "string") return { type: "function", function: { name: c.name } };
  throw new InvalidRequestError("tool_choice must be auto, none, required or a function.", {
    code: "unsupported_parameter",
    param: "tool_choice",
  });
}

function chatResponseFormat(format: Record<string, unknown>): unknown {
  if (format.type === "text") return undefined;
  if (format.type === "json_object") return { type: "json_object" };
  if (format.type === "json_schema") {
    const { name, schema, strict, description } = format;
    return {
      type: "json_schema",
      json_schema: { name, schema, ...(strict != null && { strict }), ...(description != null && { description }) },
    };
  }
  throw new InvalidRequestError(`text.format of type '${String(format.type)}' is not supported.`, {
    code: "invalid_value",
    param: "text.format.type",
  });
}

/** What every Response object echoes of its request. */
export interface ResponseContext {
  id: string;
  createdAt: number;
  request: ResponsesRequest;
}

type OutputItem = Record<string, unknown> & { type: string; id: string };
type Status = "completed" | "incomplete" | "in_progress" | "failed";

/** A Response object (OpenAI's shape) around output items. */
function responseObject(
  context: ResponseContext,
  model: string,
  output: OutputItem[],
  status: Status,
  extra: { usage?: ChatUsage | null; finishReason?: string | null; error?: { code: string; message: string } } = {},
): Record<string, unknown> {
  const { request } = context;
  const incomplete =
    extra.finishReason === "length"
      ? { reason: "max_output_tokens" }
      : extra.finishReason === "content_filter"
        ? { reason: "content_filter" }
        : null;
  return {
    id: context.id,
    object: "response",
    created_at: context.createdAt,
    status: status === "completed" && incomplete ? "incomplete" : status,
    error: extra.error ?? null,
    incomplete_details: status === "completed" ? incomplete : null,
    instructions: request.instructions ?? null,
    max_output_tokens: request.max_output_tokens ?? null,
    model,
    output,
    parallel_tool_calls: request.parallel_tool_calls ?? true,
    previous_response_id: request.previous_response_id ?? null,
    reasoning: { effort: request.reasoning?.effort ?? null, summary: null },
    store: request.store !== false,
    temperature: request.temperature ?? 1,
    text: { format: request.text?.format ?? { type: "text" } },
    tool_choice: request.tool_choice ?? "auto",
    tools: request.tools ?? [],
    top_p: request.top_p ?? 1,
    truncation: "disabled",
    usage: extra.usage ? responseUsage(extra.usage) : null,
    user: request.user ?? null,
    metadata: request.metadata ?? {},
  };
}

function responseUsage(usage: ChatUsage) {
  return {
    input_tokens: usage.prompt_tokens,
    input_tokens_details: { cached_tokens: usage.prompt_tokens_details?.cached_tokens ?? 0 },
    output_tokens: usage.completion_tokens,
    output_tokens_details: { reasoning_tokens: usage.completion_tokens_details?.reasoning_tokens ?? 0 },
    total_tokens: usage.total_tokens,
  };
}

const itemId = (prefix: string, responseId: string, n: number) =>
  `${prefix}_${responseId.slice(5)}${n.toString(16).padStart(4, "0")}`;

const messageItem = (id: string, text: string, status: Status, refusal = false): OutputItem => ({
  type: "message",
  id,
  status,
  role: "assistant",
  content: refusal
    ? [{ type: "refusal", refusal: text }]
    : [{ type: "output_text", text, annotations: [], logprobs: [] }],
});

const functionCallItem = (id: string, callId: string, name: string, args: string, status: Status): OutputItem => ({
  type: "function_call",
  id,
  call_id: callId,
  name,
  arguments: args,
  status,
});

/** A finished chat completion as a Response. */
export function toResponse(context: ResponseContext, completion: ChatCompletion): Record<string, unknown> {
  const choice = completion.choices[0];
  const message = choice?.message;
  const output: OutputItem[] = [];
  if (message?.refusal) output.push(messageItem(itemId("msg", context.id, 0), message.refusal, "completed", true));
  else if (message?.content || !message?.tool_calls?.length) {
    output.push(messageItem(itemId("msg", context.id, 0), message?.content ?? "", "completed"));
  }
  for (const call of message?.tool_calls ?? []) {
    if (call.type !== "function") continue;
    output.push(
      functionCallItem(
        itemId("fc", context.id, output.length),
        call.id,
        call.function.name,
        call.function.arguments,
        "completed",
      ),
    );
  }
  return responseObject(context, completion.model, output, "completed", {
    usage: completion.usage ?? null,
    finishReason: choice?.finish_reason ?? null,
  });
}

/** The chat messages a response adds to its conversation (what a follow-up with previous_response_id continues). */
export function outputMessages(response: Record<string, unknown>): ChatMessage[] {
  const items = (response.output ?? []) as OutputItem[];
  const text = items
    .filter((item) => item.type === "message")
    .flatMap((item) => item.content as Array<{ type: string; text?: string; refusal?: string }>)
    .map((part) => part.text ?? part.refusal ?? "")
    .join("");
  const calls = items
    .filter((item) => item.type === "function_call")
    .map((item) => ({ id: item.call_id, type: "function", function: { name: item.name, arguments: item.arguments } }));
  if (!text && calls.length === 0) return [];
  return [{ role: "assistant", content: text || null, ...(calls.length > 0 && { tool_calls: calls }) }];
}

type ResponseEvent = Record<string, unknown> & { type: string };

/**
 * Chat chunks → the Responses API's typed stream events, in OpenAI's order: response.created and .in_progress,
 * then per output item .output_item.added, its content part or argument deltas, their .done events and
 * .output_item.done, and finally response.completed (or .incomplete) with the whole response.
 */
export class ChatToResponseEvents {
  private sequence = 0;
  private model: string;
  private text: { index: number; id: string; text: string } | undefined;
  private readonly calls = new Map<number, { index: number; id: string; callId: string; name: string; args: string }>();
  /** Finished items by output index. */
  private readonly done: Array<[number, OutputItem]> = [];
  private outputs = 0;
  private usage: ChatUsage | null = null;
  private finishReason: string | null = null;

  constructor(private readonly context: ResponseContext) {
    this.model = context.request.model;
  }

  start(): ResponseEvent[] {
    const response = responseObject(this.context, this.model, [], "in_progress");
    return [this.event("response.created", { response }), this.event("response.in_progress", { response })];
  }

  translate(chunk: ChatChunk): ResponseEvent[] {
    const events: ResponseEvent[] = [];
    if (chunk.model) this.model = chunk.model;
    if (chunk.usage) this.usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) return events;
    if (choice.finish_reason) this.finishReason = choice.finish_reason;
    const delta = choice.delta ?? {};
    if (delta.content) {
      if (!this.text) {
        this.text = { index: this.outputs++, id: itemId("msg", this.context.id, this.outputs - 1), text: "" };
        const { index, id } = this.text;
        events.push(
          this.event("response.output_item.added", { output_index: index, item: messageItemInProgress(id) }),
          this.event("response.content_part.added", {
            item_id: id,
            output_index: index,
            content_index: 0,
            part: { type: "output_text", text: "", annotations: [], logprobs: [] },
          }),
        );
      }
      this.text.text += delta.content;
      events.push(
        this.event("response.output_text.delta", {
          item_id: this.text.id,
          output_index: this.text.index,
          content_index: 0,
          delta: delta.content,
          logprobs: [],
        }),
      );
    }
    for (const call of delta.tool_calls ?? []) {
      let open = this.calls.get(call.index);
      if (!open) {
        if (this.text) events.push(...this.closeText());
        open = {
          index: this.outputs++,
          id: itemId("fc", this.context.id, this.outputs - 1),
          callId: call.id ?? "",
          name: call.function?.name ?? "",
          args: "",
        };
        this.calls.set(call.index, open);
        events.push(
          this.event("response.output_item.added", {
            output_index: open.index,
            item: functionCallItem(open.id, open.callId, open.name, "", "in_progress"),
          }),
        );
      }
      const piece = call.function?.arguments ?? "";
      if (piece) {
        open.args += piece;
        events.push(
          this.event("response.function_call_arguments.delta", {
            item_id: open.id,
            output_index: open.index,
            delta: piece,
          }),
        );
      }
    }
    return events;
  }

  /** The closing events, ending with response.completed (response.incomplete when cut by max_output_tokens). */
  finish(): { events: ResponseEvent[]; response: Record<string, unknown> } {
    const events = this.closeText();
    for (const call of this.calls.values()) {
      const item = functionCallItem(call.id, call.callId, call.name, call.args, "completed");
      events.push(
        this.event("response.function_call_arguments.done", {
          item_id: call.id,
          output_index: call.index,
          name: call.name,
          arguments: call.args,
        }),
        this.event("response.output_item.done", { output_index: call.index, item }),
      );
      this.done.push([call.index, item]);
    }
    this.calls.clear();
    if (this.done.length === 0) {
      // No output at all: an empty message, so the response has one as the non-streamed path does.
      const id = itemId("msg", this.context.id, this.outputs++);
      const item = messageItem(id, "", "completed");
      events.push(this.event("response.output_item.added", { output_index: 0, item: messageItemInProgress(id) }));
      events.push(this.event("response.output_item.done", { output_index: 0, item }));
      this.done.push([0, item]);
    }
    const response = responseObject(this.context, this.model, this.output(), "completed", {
      usage: this.usage,
      finishReason: this.finishReason,
    });
    const type = response.status === "incomplete" ? "response.incomplete" : "response.completed";
    events.push(this.event(type, { response }));
    return { events, response };
  }

  /** A failure after the stream began: response.failed with the output so far, then an error event. */
  fail(error: { code: string | null; message: string; param?: string | null }): ResponseEvent[] {
    const code = error.code ?? "server_error";
    const response = responseObject(this.context, this.model, this.output(), "failed", {
      error: { code, message: error.message },
    });
    return [
      this.event("response.failed", { response }),
      this.event("error", { code, message: error.message, param: error.param ?? null }),
    ];
  }

  private closeText(): ResponseEvent[] {
    const open = this.text;
    if (!open) return [];
    this.text = undefined;
    const item = messageItem(open.id, open.text, "completed");
    this.done.push([open.index, item]);
    const at = { item_id: open.id, output_index: open.index, content_index: 0 };
    return [
      this.event("response.output_text.done", { ...at, text: open.text, logprobs: [] }),
      this.event("response.content_part.done", {
        ...at,
        part: { type: "output_text", text: open.text, annotations: [], logprobs: [] },
      }),
      this.event("response.output_item.done", { output_index: open.index, item }),
    ];
  }

  private output(): OutputItem[] {
    return [...this.done].sort((a, b) => a[0] - b[0]).map(([, item]) => item);
  }

  private event(type: string, fields: Record<string, unknown>): ResponseEvent {
    return { type, sequence_number: this.sequence++, ...fields };
  }
}

const messageItemInProgress = (id: string): OutputItem => ({
  type: "message",
  id,
  status: "in_progress",
  role: "assistant",
  content: [],
});
