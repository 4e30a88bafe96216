import type OpenAI from "openai";
import { parseJson } from "../json/parse";

/** OpenAI wire types (snake_case, as on the wire). Requests may carry fields we pass through untouched. */
export type ChatRequest = OpenAI.Chat.ChatCompletionCreateParams & Record<string, unknown>;
export type ChatCompletion = OpenAI.Chat.ChatCompletion;
export type ChatChunk = OpenAI.Chat.ChatCompletionChunk;
export type ChatUsage = OpenAI.CompletionUsage;
export type FinishReason = OpenAI.Chat.ChatCompletion.Choice["finish_reason"];
export type TextCompletion = OpenAI.Completions.Completion;
export type EmbeddingRequest = OpenAI.EmbeddingCreateParams & Record<string, unknown>;
export type EmbeddingResponse = OpenAI.CreateEmbeddingResponse;

/** The text of a message's content: the string itself, or the text parts of a content array (images etc. skipped). */
export function textParts(content: unknown): string[] {
  if (typeof content === "string") return [content];
  if (!Array.isArray(content)) return [];
  return content
    .filter((part) => part && typeof part === "object" && (part as { type?: unknown }).type === "text")
    .map((part) => String((part as { text?: unknown }).text ?? ""));
}

// A provider's answer passed on unchanged is sent as the provider wrote it, not parsed and serialized again: a 9 MB
// answer took ~60 ms of JSON.stringify on the event loop (docs/PROXY.md). Tied to the parsed object itself (a cached
// answer is that object, and keeps it), so an answer rebuilt or translated on the way (Anthropic's, the mock's) has
// none and is serialized.
const wireTexts = new WeakMap<object, string>();

/**
 * Parses a provider's JSON answer (a large one in the JSON thread, see json/parse.ts) and remembers its text;
 * rejects with a SyntaxError when it is not JSON.
 */
export async function parseWire<T>(text: string): Promise<T> {
  return withWireText(await parseJson(text), text) as T;
}

/** A value parsed from a provider's text (a JSON answer, a stream's event), remembered with that text. */
export function withWireText<T>(value: T, text: string): T {
  if (typeof value === "object" && value !== null) wireTexts.set(value, text);
  return value;
}

/** The JSON text to send for an answer: the provider's own when it came unchanged, else serialized. */
export function jsonTextOf(value: object): string {
  return wireTexts.get(value) ?? JSON.stringify(value);
}
