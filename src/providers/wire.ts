import type OpenAI from "openai";

/** OpenAI wire types (snake_case, as on the wire). Requests may carry fields we pass through untouched. */
export type ChatRequest = OpenAI.Chat.ChatCompletionCreateParams & Record<string, unknown>;
export type ChatCompletion = OpenAI.Chat.ChatCompletion;
export type ChatChunk = OpenAI.Chat.ChatCompletionChunk;
export type ChatUsage = OpenAI.CompletionUsage;
export type FinishReason = OpenAI.Chat.ChatCompletion.Choice["finish_reason"];
export type EmbeddingRequest = OpenAI.EmbeddingCreateParams & Record<string, unknown>;
export type EmbeddingResponse = OpenAI.CreateEmbeddingResponse;
