import { z } from "zod";

/**
 * Wire shapes of responses that are not the management API's own (those live in routes/views.ts): errors, health,
 * status, and the OpenAI/Anthropic objects relayed from providers. Objects are loose: providers add fields, and
 * clients must tolerate them, as OpenAI's own specification says.
 */

export const ErrorResponse = z
  .strictObject({
    error: z.strictObject({
      message: z.string(),
      type: z.string().meta({ examples: ["invalid_request_error", "rate_limit_exceeded", "server_error"] }),
      param: z.string().nullable(),
      code: z.string().nullable(),
    }),
  })
  .meta({ id: "Error", description: "OpenAI's error shape, read by the official SDKs into their APIError classes." });

export const AnthropicErrorResponse = z
  .strictObject({ type: z.literal("error"), error: z.strictObject({ type: z.string(), message: z.string() }) })
  .meta({ id: "AnthropicError", description: "Anthropic's error shape, read by @anthropic-ai/sdk." });

export const Health = z
  .strictObject({
    status: z.literal("healthy"),
    version: z.string(),
    uptime_seconds: z.int().nonnegative(),
    models_loaded: z.boolean().meta({ description: "Local mode: the vLLM backend lists at least one model." }),
    vector_db_connected: z.boolean(),
  })
  .meta({ id: "Health" });

export const Readiness = z
  .strictObject({ status: z.enum(["ready", "unavailable"]), database: z.string() })
  .meta({ id: "Readiness" });

const componentState = z.enum(["operational", "degraded", "down", "not configured"]);
export const Status = z
  .strictObject({
    status: z.enum(["operational", "degraded"]),
    version: z.string(),
    uptime_seconds: z.int().nonnegative(),
    components: z.strictObject({
      api: componentState,
      database: componentState,
      vector_db: componentState,
      redis: componentState,
    }),
    backends: z
      .array(z.strictObject({ name: z.string(), state: componentState, models: z.array(z.string()) }))
      .meta({ description: "Local mode: the model servers (vLLM), by position; empty in proxy mode." }),
    uptime_24h: z.record(z.string(), z.number().nullable()).meta({
      description:
        "Per component (and backend): percent of this replica's checks (every 30 s) over the last 24 hours, or " +
        "since it started when that is shorter, that found it operational; null when not configured.",
    }),
    uptime_window_seconds: z.int().nonnegative().meta({ description: "How much time uptime_24h covers." }),
    average_latency_ms: z.number().nullable(),
    requests_today: z.int().nullable(),
    active_users_today: z.int().nullable(),
    checked_at: z.iso.datetime(),
  })
  .meta({ id: "Status" });

export const Usage = z
  .looseObject({ prompt_tokens: z.int(), completion_tokens: z.int(), total_tokens: z.int() })
  .meta({ id: "CompletionUsage" });

export const ChatCompletion = z
  .looseObject({
    id: z.string(),
    object: z.literal("chat.completion"),
    created: z.int(),
    model: z.string(),
    choices: z.array(
      z.looseObject({
        index: z.int(),
        message: z.looseObject({ role: z.literal("assistant"), content: z.string().nullable() }),
        finish_reason: z.string().nullable(),
      }),
    ),
    usage: Usage.optional(),
  })
  .meta({ id: "ChatCompletion" });

export const ChatCompletionChunk = z
  .looseObject({
    id: z.string(),
    object: z.literal("chat.completion.chunk"),
    created: z.int(),
    model: z.string(),
    choices: z.array(
      z.looseObject({
        index: z.int(),
        delta: z.looseObject({ role: z.string().optional(), content: z.string().nullable().optional() }),
        finish_reason: z.string().nullable(),
      }),
    ),
    usage: Usage.nullable().optional(),
  })
  .meta({
    id: "ChatCompletionChunk",
    description: "Sent as server-sent events `data: <chunk>`, ending with `data: [DONE]`.",
  });

export const EmbeddingList = z
  .looseObject({
    object: z.literal("list"),
    data: z.array(
      z.looseObject({
        object: z.literal("embedding"),
        index: z.int(),
        embedding: z.union([z.array(z.number()), z.string()]),
      }),
    ),
    model: z.string(),
    usage: z.looseObject({ prompt_tokens: z.int(), total_tokens: z.int() }),
  })
  .meta({ id: "EmbeddingList" });

export const Model = z
  .strictObject({ id: z.string(), object: z.literal("model"), created: z.int(), owned_by: z.string() })
  .meta({ id: "Model" });

export const AnthropicMessage = z
  .looseObject({
    id: z.string(),
    type: z.literal("message"),
    role: z.literal("assistant"),
    model: z.string(),
    content: z.array(z.looseObject({ type: z.string() })),
    stop_reason: z.string().nullable(),
    usage: z.looseObject({ input_tokens: z.int(), output_tokens: z.int() }),
  })
  .meta({ id: "AnthropicMessage" });

export const AnthropicStreamEvent = z.looseObject({ type: z.string() }).meta({
  id: "AnthropicStreamEvent",
  description:
    "Server-sent events as Anthropic sends them: message_start, content_block_*, message_delta, message_stop.",
});

export const TextCompletion = z
  .looseObject({
    id: z.string(),
    object: z.literal("text_completion"),
    created: z.int(),
    model: z.string(),
    choices: z.array(z.looseObject({ index: z.int(), text: z.string(), finish_reason: z.string().nullable() })),
  })
  .meta({ id: "TextCompletion", description: "OpenAI's legacy text completion (and, streamed, its chunks)." });

export const ResponseObject = z
  .looseObject({
    id: z.string(),
    object: z.literal("response"),
    created_at: z.int(),
    status: z.enum(["completed", "incomplete", "in_progress", "failed"]),
    model: z.string(),
    output: z.array(z.looseObject({ type: z.string(), id: z.string() })),
    usage: z.looseObject({ input_tokens: z.int(), output_tokens: z.int(), total_tokens: z.int() }).nullable(),
    previous_response_id: z.string().nullable(),
    metadata: z.record(z.string(), z.string()),
  })
  .meta({ id: "Response", description: "OpenAI's Response object." });

export const ResponseStreamEvent = z.looseObject({ type: z.string(), sequence_number: z.int() }).meta({
  id: "ResponseStreamEvent",
  description:
    "Typed server-sent events as OpenAI sends them: response.created, response.in_progress, " +
    "response.output_item.added/.done, response.content_part.added/.done, response.output_text.delta/.done, " +
    "response.function_call_arguments.delta/.done, then response.completed (or response.incomplete); a failure " +
    "after the stream began is response.failed followed by an error event.",
});

/** `{"object": "list", "data": [...]}`, the list envelope of every listing endpoint. */
export const listOf = <T extends z.ZodType>(item: T) =>
  z.strictObject({ object: z.literal("list"), data: z.array(item) });

/** Headers documented by name on responses; their descriptions live here once. */
export const documentedHeaders: Record<string, string> = {
  "x-request-id":
    "The caller's own x-request-id when it sent an acceptable one (kept for tracing), else the server's request id; " +
    "present on every response.",
  "x-perpetual-request-id":
    "The server's own request id: it keys the request's usage row and billing event; present on every response.",
  "x-ratelimit-limit-requests":
    "Requests allowed per minute: the tier's, or the API key's own limit when that has less left.",
  "x-ratelimit-remaining-requests": "Requests left in the current minute.",
  "x-ratelimit-reset-requests": "Time until the minute window resets, e.g. `12s`.",
  "x-ratelimit-limit-tokens": "Tokens allowed per minute; absent when the tier has no token limit.",
  "x-ratelimit-remaining-tokens": "Tokens left in the current minute (running requests hold their estimate).",
  "x-ratelimit-reset-tokens": "Time until the minute window resets.",
  "x-perpetual-memory":
    "Recall outcome: ok (memories added), irrelevant (the user has memories but none clears the relevance gate, so " +
    "none were added), empty (nothing to recall), off, timeout or unavailable (answered without memory).",
  "x-perpetual-memories-used": "How many memory excerpts were added to the prompt.",
  "x-perpetual-memory-tokens": "Approximate tokens the added memory message costs (0 when none was added).",
  "x-perpetual-memory-budget": "The memory token ceiling that applied: the request's header within the tier's.",
  "x-perpetual-cache":
    "Response cache outcome when the request opted in: hit (answered from the cache, no provider call, cost 0), " +
    "miss (answered by the provider, now cached), skip (not deterministic: temperature is not 0, or n > 1).",
  "x-perpetual-cache-match": "On a hit: exact (the same request) or semantic (a similar last user turn).",
  "retry-after": "Seconds to wait before retrying (429 and 503).",
  "retry-after-ms": "Milliseconds to wait before retrying (429).",
};

export const MEMORY_RESPONSE_HEADERS = [
  "x-perpetual-memory",
  "x-perpetual-memories-used",
  "x-perpetual-memory-tokens",
  "x-perpetual-memory-budget",
  "x-perpetual-cache",
  "x-perpetual-cache-match",
];

/** Request headers of the memory-enabled chat endpoints. */
export const MEMORY_REQUEST_HEADERS: Record<string, string> = {
  "x-perpetual-conversation-id":
    "The conversation this exchange belongs to (letters, digits, `_.:-`, ≤ 200); for OpenAI requests " +
    "`metadata.conversation_id` is used when the header is absent.",
  "x-perpetual-memory":
    "on (recall and write back), off, read-only (recall only) or write-only; default MEMORY_DEFAULT_MODE.",
  "x-perpetual-memory-scope":
    "user (all the user's conversations) or conversation (only this conversation id); default MEMORY_DEFAULT_SCOPE.",
  "x-perpetual-memory-budget":
    "At most this many tokens of memory for this request (0 turns recall off); values above the tier's ceiling " +
    "(max_memory_tokens, else MEMORY_TOKEN_BUDGET) are lowered to it. Memory is added only when relevant, so " +
    "this is a ceiling, not a target.",
  "x-perpetual-cache":
    "off, exact (answer a request identical to an earlier one of yours from the cache) or semantic (also one whose " +
    "last user turn is similar enough, same model and parameters); default RESPONSE_CACHE. Per user, never across.",
  "x-perpetual-cache-force":
    "true: cache even when sampling is not deterministic (by default only temperature 0 and n 1 are cached).",
};

export const RATE_LIMIT_HEADERS = Object.keys(documentedHeaders).filter((h) => h.startsWith("x-ratelimit-"));
