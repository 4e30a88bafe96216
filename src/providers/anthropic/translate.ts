import { InvalidRequestError } from "../../errors";
import {
  type ChatChunk,
  type ChatCompletion,
  type ChatRequest,
  type ChatUsage,
  type FinishReason,
  textParts,
} from "../wire";

/**
 * Pure OpenAI ⇄ Anthropic Messages translation, used in both directions:
 * - provider side: an OpenAI chat request to an Anthropic model (toAnthropicRequest, fromAnthropicMessage,
 *   AnthropicToOpenAIStream);
 * - front side: /v1/messages in front of any provider (fromAnthropicRequest, toAnthropicMessage,
 *   OpenAIToAnthropicStream).
 */

type Json = Record<string, unknown>;

export interface AnthropicRequest {
  model: string;
  max_tokens: number;
  messages: Array<{ role: "user" | "assistant"; content: string | Json[] }>;
  system?: string | Json[];
  temperature?: number;
  top_p?: number;
  top_k?: number;
  stop_sequences?: string[];
  tools?: Json[];
  tool_choice?: Json;
  metadata?: { user_id?: string };
  stream?: boolean;
  [extra: string]: unknown;
}

export interface AnthropicMessage {
  id: string;
  type: "message";
  role: "assistant";
  model: string;
  content: Json[];
  stop_reason: string | null;
  stop_sequence: string | null;
  usage: AnthropicUsage;
}

export interface AnthropicUsage {
  input_tokens: number;
  output_tokens: number;
  cache_read_input_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
}

export const DEFAULT_MAX_TOKENS = 4096;

// ---------------------------------------------------------------------------------------------------------------
// OpenAI request → Anthropic request

const textOf = (content: unknown): string => textParts(content).join("");

function toAnthropicImage(url: string): Json {
  const dataUrl = /^data:([^;,]+);base64,(.*)$/s.exec(url);
  if (dataUrl) return { type: "image", source: { type: "base64", media_type: dataUrl[1], data: dataUrl[2] } };
  return { type: "image", source: { type: "url", url } };
}

function toAnthropicContent(content: unknown): Json[] {
  if (typeof content === "string") return content === "" ? [] : [{ type: "text", text: content }];
  if (!Array.isArray(content)) return [];
  const blocks: Json[] = [];
  for (const part of content as Json[]) {
    if (part.type === "text") blocks.push({ type: "text", text: String(part.text ?? "") });
    else if (part.type === "image_url") {
      const image = part.image_url as { url?: string } | undefined;
      if (image?.url) blocks.push(toAnthropicImage(image.url));
    } else
      throw new InvalidRequestError(`Content part type '${String(part.type)}' is not supported by Anthropic models.`, {
        code: "unsupported_content",
        param: "messages",
      });
  }
  return blocks;
}

function parseArguments(args: unknown): unknown {
  if (typeof args !== "string" || args.trim() === "") return {};
  try {
    return JSON.parse(args);
  } catch {
    throw new InvalidRequestError("A tool call's arguments are not valid JSON.", {
      code: "invalid_tool_arguments",
      param: "messages",
    });
  }
}

function toAnthropicToolChoice(choice: unknown, parallel: unknown): Json | undefined {
  const disable = parallel === false ? { disable_parallel_tool_use: true } : {};
  if (choice === undefined || choice === null) return parallel === false ? { type: "auto", ...disable } : undefined;
  if (choice === "auto") return { type: "auto", ...disable };
  if (choice === "none") return { type: "none" };
  if (choice === "required") return { type: "any", ...disable };
  const named = (choice as { function?: { name?: string } }).function?.name;
  if (named) return { type: "tool", name: named, ...disable };
  return undefined;
}

export function toAnthropicRequest(request: ChatRequest, upstreamModel: string): AnthropicRequest {
  const system: string[] = [];
  const messages: AnthropicRequest["messages"] = [];
  const push = (role: "user" | "assistant", blocks: Json[]) => {
    const last = messages[messages.length - 1];
    // Anthropic wants alternating turns: consecutive same-role messages become one turn.
    if (last && last.role === role && Array.isArray(last.content)) last.content.push(...blocks);
    else messages.push({ role, content: blocks });
  };
  for (const message of request.messages as unknown as Json[]) {
    switch (message.role) {
      case "system":
      case "developer":
        system.push(textOf(message.content));
        break;
      case "user":
        push("user", toAnthropicContent(message.content));
        break;
      case "assistant": {
        const blocks = toAnthropicContent(message.content);
        for (const call of (message.tool_calls as Json[] | undefined) ?? []) {
          const fn = call.function as { name?: string; arguments?: string };
          blocks.push({ type: "tool_use", id: call.id, name: fn.name, input: parseArguments(fn.arguments) });
        }
        push("assistant", blocks);
        break;
      }
      case "tool":
        push("user", [{ type: "tool_result", tool_use_id: message.tool_call_id, content: textOf(message.content) }]);
        break;
      default:
        throw new InvalidRequestError(`Unsupported message role '${String(message.role)}'.`, {
          code: "invalid_value",
          param: "messages",
        });
    }
  }
  const r = request as Json;
  const stop = r.stop;
  const tools = (r.tools as Json[] | undefined)?.map((tool) => {
    const fn = tool.function as { name: string; description?: string; parameters?: Json };
    return {
      name: fn.name,
      description: fn.description,
      input_schema: fn.parameters ?? { type: "object", properties: {} },
    };
  });
  const out: AnthropicRequest = {
    model: upstreamModel,
    max_tokens: Number(r.max_completion_tokens ?? r.max_tokens ?? DEFAULT_MAX_TOKENS),
    messages,
  };
  if (system.length > 0) out.system = system.join("\n\n");
  // OpenAI's temperature runs 0-2, Anthropic's 0-1.
  if (typeof r.temperature === "number") out.temperature = Math.min(r.temperature, 1);
  if (typeof r.top_p === "number") out.top_p = r.top_p;
  if (stop !== undefined && stop !== null)
    out.stop_sequences = Array.isArray(stop) ? (stop as string[]) : [String(stop)];
  if (tools && tools.length > 0) out.tools = tools;
  const toolChoice = toAnthropicToolChoice(r.tool_choice, r.parallel_tool_calls);
  if (toolChoice && tools && tools.length > 0) out.tool_choice = toolChoice;
  if (typeof r.user === "string") out.metadata = { user_id: r.user };
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Anthropic response → OpenAI response

const FINISH_FROM_ANTHROPIC: Record<string, FinishReason> = {
  end_turn: "stop",
  stop_sequence: "stop",
  pause_turn: "stop",
  max_tokens: "length",
  model_context_window_exceeded: "length",
  tool_use: "tool_calls",
  refusal: "content_filter",
};

export function usageFromAnthropic(usage: AnthropicUsage): ChatUsage {
  const cached = usage.cache_read_input_tokens ?? 0;
  const prompt = usage.input_tokens + cached + (usage.cache_creation_input_tokens ?? 0);
  return {
    prompt_tokens: prompt,
    completion_tokens: usage.output_tokens,
    total_tokens: prompt + usage.output_tokens,
    prompt_tokens_details: { cached_tokens: cached },
  };
}

export function fromAnthropicMessage(message: AnthropicMessage, created: number): ChatCompletion {
  const text = message.content
    .filter((b) => b.type === "text")
    .map((b) => String(b.text))
    .join("");
  const toolCalls = message.content
    .filter((b) => b.type === "tool_use")
    .map((b) => ({
      id: String(b.id),
      type: "function" as const,
      function: { name: String(b.name), arguments: JSON.stringify(b.input ?? {}) },
    }));
  return {
    id: message.id,
    object: "chat.completion",
    created,
    model: message.model,
    choices: [
      {
        index: 0,
        message: {
          role: "assistant",
          content: text === "" && toolCalls.length > 0 ? null : text,
          refusal: null,
          ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
        },
        finish_reason: FINISH_FROM_ANTHROPIC[message.stop_reason ?? "end_turn"] ?? "stop",
        logprobs: null,
      },
    ],
    usage: usageFromAnthropic(message.usage),
  };
}

/** Turns Anthropic stream events into OpenAI chat.completion.chunk objects, ending with a usage chunk. */
export class AnthropicToOpenAIStream {
  private id = "";
  private model = "";
  private inputUsage: AnthropicUsage = { input_tokens: 0, output_tokens: 0 };
  private outputTokens = 0;
  private readonly toolIndexByBlock = new Map<number, number>();

  constructor(private readonly created: number) {}

  private chunk(delta: Json, finish: FinishReason | null = null): ChatChunk {
    return {
      id: this.id,
      object: "chat.completion.chunk",
      created: this.created,
      model: this.model,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
    } as ChatChunk;
  }

  /** Zero or more OpenAI chunks for one Anthropic event. */
  translate(event: Json): ChatChunk[] {
    switch (event.type) {
      case "message_start": {
        const message = event.message as AnthropicMessage;
        this.id = message.id;
        this.model = message.model;
        this.inputUsage = message.usage;
        return [this.chunk({ role: "assistant", content: "" })];
      }
      case "content_block_start": {
        const block = event.content_block as Json;
        if (block.type !== "tool_use") return [];
        const toolIndex = this.toolIndexByBlock.size;
        this.toolIndexByBlock.set(Number(event.index), toolIndex);
        return [
          this.chunk({
            tool_calls: [
              { index: toolIndex, id: block.id, type: "function", function: { name: block.name, arguments: "" } },
            ],
          }),
        ];
      }
      case "content_block_delta": {
        const delta = event.delta as Json;
        if (delta.type === "text_delta") return [this.chunk({ content: delta.text })];
        if (delta.type === "input_json_delta") {
          const toolIndex = this.toolIndexByBlock.get(Number(event.index)) ?? 0;
          return [this.chunk({ tool_calls: [{ index: toolIndex, function: { arguments: delta.partial_json } }] })];
        }
        return [];
      }
      case "message_delta": {
        const delta = event.delta as { stop_reason?: string | null };
        const usage = event.usage as Partial<AnthropicUsage> | undefined;
        if (usage?.output_tokens !== undefined) this.outputTokens = usage.output_tokens;
        if (usage?.input_tokens) this.inputUsage = { ...this.inputUsage, input_tokens: usage.input_tokens };
        if (usage?.cache_read_input_tokens)
          this.inputUsage = { ...this.inputUsage, cache_read_input_tokens: usage.cache_read_input_tokens };
        return [this.chunk({}, FINISH_FROM_ANTHROPIC[delta.stop_reason ?? "end_turn"] ?? "stop")];
      }
      case "message_stop":
        return [
          {
            id: this.id,
            object: "chat.completion.chunk",
            created: this.created,
            model: this.model,
            choices: [],
            usage: usageFromAnthropic({ ...this.inputUsage, output_tokens: this.outputTokens }),
          } as ChatChunk,
        ];
      default:
        return [];
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Anthropic request → OpenAI request (front side: /v1/messages in front of any provider)

function fromAnthropicBlocks(blocks: string | Json[]): { parts: Json[]; toolUses: Json[]; toolResults: Json[] } {
  const parts: Json[] = [];
  const toolUses: Json[] = [];
  const toolResults: Json[] = [];
  for (const block of typeof blocks === "string" ? [{ type: "text", text: blocks }] : blocks) {
    if (block.type === "text") parts.push({ type: "text", text: block.text });
    else if (block.type === "image") {
      const source = block.source as Json;
      const url =
        source.type === "base64"
          ? `data:${String(source.media_type)};base64,${String(source.data)}`
          : String(source.url);
      parts.push({ type: "image_url", image_url: { url } });
    } else if (block.type === "tool_use") {
      toolUses.push({
        id: block.id,
        type: "function",
        function: { name: block.name, arguments: JSON.stringify(block.input ?? {}) },
      });
    } else if (block.type === "tool_result") {
      const content = block.content;
      toolResults.push({
        role: "tool",
        tool_call_id: block.tool_use_id,
        content: typeof content === "string" ? content : textOf(content),
      });
    }
  }
  return { parts, toolUses, toolResults };
}

const onlyText = (parts: Json[]) => parts.every((p) => p.type === "text");
const joinText = (parts: Json[]) => parts.map((p) => String(p.text)).join("");

export function fromAnthropicRequest(request: AnthropicRequest): ChatRequest {
  const messages: Json[] = [];
  if (request.system)
    messages.push({
      role: "system",
      content: typeof request.system === "string" ? request.system : textOf(request.system),
    });
  for (const message of request.messages) {
    const { parts, toolUses, toolResults } = fromAnthropicBlocks(message.content);
    messages.push(...toolResults);
    if (message.role === "assistant") {
      if (parts.length > 0 || toolUses.length > 0) {
        messages.push({
          role: "assistant",
          content: parts.length > 0 ? joinText(parts) : null,
          ...(toolUses.length > 0 ? { tool_calls: toolUses } : {}),
        });
      }
    } else if (parts.length > 0) {
      messages.push({ role: "user", content: onlyText(parts) ? joinText(parts) : parts });
    }
  }
  const out: Json = { model: request.model, messages, max_tokens: request.max_tokens };
  if (request.temperature !== undefined) out.temperature = request.temperature;
  if (request.top_p !== undefined) out.top_p = request.top_p;
  if (request.stop_sequences) out.stop = request.stop_sequences;
  if (request.metadata?.user_id) out.user = request.metadata.user_id;
  if (request.tools) {
    out.tools = request.tools.map((t) => ({
      type: "function",
      function: { name: t.name, description: t.description, parameters: t.input_schema },
    }));
  }
  const choice = request.tool_choice;
  if (choice) {
    if (choice.type === "auto") out.tool_choice = "auto";
    else if (choice.type === "any") out.tool_choice = "required";
    else if (choice.type === "none") out.tool_choice = "none";
    else if (choice.type === "tool") out.tool_choice = { type: "function", function: { name: choice.name } };
    if (choice.disable_parallel_tool_use === true) out.parallel_tool_calls = false;
  }
  if (request.stream) out.stream = true;
  return out as unknown as ChatRequest;
}

// ---------------------------------------------------------------------------------------------------------------
// OpenAI response → Anthropic response (front side)

const STOP_FROM_OPENAI: Record<string, string> = {
  stop: "end_turn",
  length: "max_tokens",
  tool_calls: "tool_use",
  function_call: "tool_use",
  content_filter: "refusal",
};

export function usageToAnthropic(usage: ChatUsage | undefined | null): AnthropicUsage {
  const cached = usage?.prompt_tokens_details?.cached_tokens ?? 0;
  return {
    input_tokens: (usage?.prompt_tokens ?? 0) - cached,
    output_tokens: usage?.completion_tokens ?? 0,
    cache_read_input_tokens: cached,
    cache_creation_input_tokens: 0,
  };
}

export function toAnthropicMessage(completion: ChatCompletion): AnthropicMessage {
  const choice = completion.choices[0];
  const content: Json[] = [];
  if (choice?.message.content) content.push({ type: "text", text: choice.message.content });
  for (const call of choice?.message.tool_calls ?? []) {
    if (call.type !== "function") continue;
    content.push({ type: "tool_use", id: call.id, name: call.function.name, input: safeJson(call.function.arguments) });
  }
  return {
    id: completion.id.startsWith("msg_") ? completion.id : `msg_${completion.id.replace(/^chatcmpl-/, "")}`,
    type: "message",
    role: "assistant",
    model: completion.model,
    content,
    stop_reason: STOP_FROM_OPENAI[choice?.finish_reason ?? "stop"] ?? "end_turn",
    stop_sequence: null,
    usage: usageToAnthropic(completion.usage),
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text || "{}");
  } catch {
    return {};
  }
}

/** Turns OpenAI chunks into Anthropic's event sequence (message_start … message_stop) for /v1/messages. */
export class OpenAIToAnthropicStream {
  private started = false;
  private openBlock: { index: number; kind: "text" | "tool"; toolIndex?: number } | undefined;
  private nextBlock = 0;
  private stopReason = "end_turn";
  private usage: ChatUsage | undefined;

  constructor(
    private readonly messageId: string,
    private readonly model: string,
  ) {}

  translate(chunk: ChatChunk): Json[] {
    const events: Json[] = [];
    if (!this.started) {
      this.started = true;
      events.push({
        type: "message_start",
        message: {
          id: this.messageId,
          type: "message",
          role: "assistant",
          model: this.model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: 0, output_tokens: 0 },
        },
      });
    }
    if (chunk.usage) this.usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) return events;
    const delta = choice.delta;
    if (delta.content) {
      if (this.openBlock?.kind !== "text") {
        this.closeBlock(events);
        this.openBlock = { index: this.nextBlock++, kind: "text" };
        events.push({
          type: "content_block_start",
          index: this.openBlock.index,
          content_block: { type: "text", text: "" },
        });
      }
      events.push({
        type: "content_block_delta",
        index: this.openBlock.index,
        delta: { type: "text_delta", text: delta.content },
      });
    }
    for (const call of delta.tool_calls ?? []) {
      if (call.id || this.openBlock?.kind !== "tool" || this.openBlock.toolIndex !== call.index) {
        this.closeBlock(events);
        this.openBlock = { index: this.nextBlock++, kind: "tool", toolIndex: call.index };
        events.push({
          type: "content_block_start",
          index: this.openBlock.index,
          content_block: {
            type: "tool_use",
            id: call.id ?? `toolu_${call.index}`,
            name: call.function?.name ?? "",
            input: {},
          },
        });
      }
      if (call.function?.arguments) {
        events.push({
          type: "content_block_delta",
          index: this.openBlock.index,
          delta: { type: "input_json_delta", partial_json: call.function.arguments },
        });
      }
    }
    if (choice.finish_reason) this.stopReason = STOP_FROM_OPENAI[choice.finish_reason] ?? "end_turn";
    return events;
  }

  finish(): Json[] {
    const events: Json[] = [];
    if (!this.started) events.push(...this.translate({ choices: [] } as unknown as ChatChunk));
    this.closeBlock(events);
    const usage = usageToAnthropic(this.usage);
    events.push({ type: "message_delta", delta: { stop_reason: this.stopReason, stop_sequence: null }, usage });
    events.push({ type: "message_stop" });
    return events;
  }

  private closeBlock(events: Json[]): void {
    if (this.openBlock) events.push({ type: "content_block_stop", index: this.openBlock.index });
    this.openBlock = undefined;
  }
}
