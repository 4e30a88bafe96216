import type OpenAI from "openai";

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
