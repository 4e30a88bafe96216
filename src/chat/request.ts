import { z } from "zod";
import type { ChatRequest } from "../providers";
import { parseInput } from "../validation";

const contentPart = z.looseObject({ type: z.string() });
const message = z.looseObject({
  role: z.enum(["system", "developer", "user", "assistant", "tool", "function"], {
    message: "must be one of system, developer, user, assistant, tool",
  }),
  content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
});

/** The fields we check; every other field is passed to the provider untouched. */
export const chatRequestSchema = z
  .looseObject({
    model: z.string().trim().min(1, { message: "is required" }).max(256),
    messages: z.array(message).min(1, { message: "must contain at least one message" }),
    stream: z.boolean().optional(),
    stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullable().optional(),
    max_tokens: z.number().int().positive().nullable().optional(),
    max_completion_tokens: z.number().int().positive().nullable().optional(),
    temperature: z.number().min(0).max(2).nullable().optional(),
    top_p: z.number().min(0).max(1).nullable().optional(),
    n: z.number().int().min(1).max(128).nullable().optional(),
    /** Perpetual's own: answer with this text without calling a provider (for users' integration tests). */
    mock_response: z
      .string()
      .max(1_000_000)
      .optional()
      .meta({ description: "Perpetual extension: answer with this text without calling a provider (tests)." }),
  })
  .meta({
    id: "ChatCompletionRequest",
    description: "OpenAI's chat completion request. Fields not listed are passed to the provider untouched.",
  });

export interface ParsedChatRequest {
  /** What goes to the provider's adapter: the client's body. */
  body: ChatRequest;
  model: string;
  stream: boolean;
  clientWantsUsage: boolean;
  mockResponse?: string;
  /** Legacy text completions: the prompt's text (their body has no messages). */
  prompt?: string;
}

export function parseChatRequest(raw: unknown): ParsedChatRequest {
  // mock_response stays in the body: it routes the request to the mock provider, whose adapter answers with it
  // (providers/mock.ts); no other provider ever sees such a request.
  const body = parseInput(chatRequestSchema, raw);
  return {
    body: body as unknown as ChatRequest,
    model: body.model,
    stream: body.stream === true,
    clientWantsUsage: body.stream_options?.include_usage === true,
    mockResponse: body.mock_response,
  };
}

export const embeddingRequestSchema = z
  .looseObject({
    model: z.string().trim().min(1, { message: "is required" }).max(256),
    input: z.union([
      z.string(),
      z.array(z.string()).min(1),
      z.array(z.number().int()).min(1),
      z.array(z.array(z.number().int()).min(1)).min(1),
    ]),
  })
  .meta({ id: "EmbeddingRequest" });

export function parseEmbeddingRequest(raw: unknown) {
  return parseInput(embeddingRequestSchema, raw);
}

export const textCompletionRequestSchema = z
  .looseObject({
    model: z.string().trim().min(1, { message: "is required" }).max(256),
    prompt: z.union([
      z.string(),
      z.array(z.string()).min(1),
      z.array(z.number().int()).min(1),
      z.array(z.array(z.number().int()).min(1)).min(1),
    ]),
    stream: z.boolean().optional(),
    stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullable().optional(),
    max_tokens: z.number().int().positive().nullable().optional(),
    temperature: z.number().min(0).max(2).nullable().optional(),
    n: z.number().int().min(1).max(128).nullable().optional(),
  })
  .meta({
    id: "CompletionRequest",
    description: "OpenAI's legacy text completion request. Fields not listed are passed to the provider untouched.",
  });

/** A legacy text completion request, in the shape the pipeline records usage with (the prompt as one user turn). */
export function parseTextCompletionRequest(raw: unknown): ParsedChatRequest {
  const body = parseInput(textCompletionRequestSchema, raw);
  const prompt =
    typeof body.prompt === "string"
      ? body.prompt
      : body.prompt.every((p) => typeof p === "string")
        ? body.prompt.join("\n")
        : "";
  return {
    body: body as unknown as ChatRequest,
    model: body.model,
    stream: body.stream === true,
    clientWantsUsage: body.stream_options?.include_usage === true,
    prompt,
  };
}

/** The request's input as chat turns, for estimates: its messages, or a text completion's prompt as one turn. */
export const promptTurns = (request: ParsedChatRequest): Array<{ content?: unknown }> =>
  (request.body.messages as Array<{ content?: unknown }> | undefined) ?? [{ content: request.prompt ?? "" }];
