import { assertWithinSpend } from "../billing/spend";
import {
  type CacheControls,
  type CacheHit,
  cacheable,
  cacheControls,
  type ResponseCache,
} from "../cache/response-cache";
import type { Config } from "../config";
import { ApiError, InvalidRequestError } from "../errors";
import { callerText, type Guard, type GuardRule } from "../guard";
import type { Principal } from "../identity";
import type { RateLimiter, Reservation } from "../limits";
import {
  type ChatTurn,
  exchangeToRemember,
  type MemoryControls,
  type MemoryService,
  type Recall,
  writesMemory,
} from "../memory";
import type { Metrics } from "../metrics";
import {
  adapterFor,
  type ChatChunk,
  type ChatCompletion,
  type ChatUsage,
  type EmbeddingRequest,
  type EmbeddingResponse,
  estimatePromptTokens,
  estimateTokens,
  isMock,
  MOCK_PROVIDER,
  type ProviderAdapter,
  type Route,
  replayStream,
  type TextCompletion,
  UpstreamError,
} from "../providers";
import { costOf, type TokenUsage, type UsageRecorder } from "../usage";
import { CompletionAssembler } from "./assembler";
import {
  type ParsedChatRequest,
  parseChatRequest,
  parseEmbeddingRequest,
  parseTextCompletionRequest,
  promptTurns,
} from "./request";
import type { Destination, Targets } from "./targets";

export interface ChatInput {
  principal: Principal;
  body: unknown;
  /** The server's id (keys the usage row); the caller's x-request-id is kept beside it for tracing. */
  requestId: string;
  clientRequestId: string | null;
  conversationId: string | null;
  endpoint: string;
  /** Aborted when the client goes away: the provider call is cancelled with it. */
  signal: AbortSignal;
  /** Recall and write-back for this request (from headers); absent: no memory (embeddings). */
  memory?: MemoryControls;
  /** The response cache for this request (from headers); absent: not cached. */
  cache?: CacheControls;
  /** The client's address (the guard's key-sharing rule). */
  clientAddress?: string;
  /** Calls the provider instead of the provider's chat adapter (the Responses API passed through to OpenAI). */
  adapter?: Pick<ProviderAdapter, "complete" | "stream">;
}

/** `headers`: the caller's rate-limit state (x-ratelimit-*) and memory use (x-perpetual-memory*) for the response. */
export type ChatResult = { headers: Record<string, string> } & (
  | { stream: false; completion: ChatCompletion }
  | { stream: true; model: string; chunks: AsyncIterable<ChatChunk> }
);

export interface ChatPipelineDeps {
  config: Pick<Config, "models" | "http" | "tiers" | "cache">;
  /** The per-user response cache (requests opt in with x-perpetual-cache). */
  cache?: ResponseCache;
  /** The abuse and prompt-injection guard (each tier's `guard` mode). */
  guard?: Guard;
  targets: Targets;
  limiter: RateLimiter;
  usage: UsageRecorder;
  metrics: Metrics;
  memory: MemoryService;
}

/**
 * POST /v1/chat/completions, in the order of the architecture:
 * (request context and authentication happen in the HTTP layer, before this)
 * 1. validate the request          2. route the model (404 before anything is counted; mock_response → the mock
 *    provider)                      (the guard's content rules run here too)
 * 3. limits: spend cap and prepaid balance (402), then reserve requests and a token estimate, settled to real
 *    usage when recorded; a response-cache hit answers here
 * 4. resolve the target: the user's provider key, still sealed (400 provider_key_missing before any recall)
 * 5. recall memory into one system message (never fails the request: without memory on timeout or outage)
 * 6. call the provider: the key is opened for this call only (or a local vLLM server is picked)
 * 7. record usage, cost and the exchange for memory write-back: journaled before the answer ends, written to
 *    PostgreSQL off the response path, never lost. Requests refused at 1–4 are recorded too (status, no tokens).
 */
export class ChatPipeline {
  private inFlight = 0;
  private onIdle: (() => void) | undefined;
  private shuttingDown = false;

  constructor(private readonly deps: ChatPipelineDeps) {}

  /**
   * This request's response-cache controls: x-perpetual-cache and x-perpetual-cache-force, over the user's own
   * setting, over RESPONSE_CACHE.
   */
  cacheControlsFrom(header: (name: string) => string | undefined, principal?: Principal): CacheControls {
    return cacheControls(header, principal?.settings?.responseCache ?? this.deps.config.cache.defaultMode);
  }

  async run(input: ChatInput): Promise<ChatResult> {
    const started = performance.now();
    const finish = this.track();
    let request: ParsedChatRequest;
    let route: Route;
    let reservation: Reservation;
    let guarded: GuardVerdict = { flags: [], headers: {} };
    try {
      request = parseChatRequest(input.body);
      // mock_response names its own provider (providers/mock.ts): a shaped answer without a key or a network call.
      route =
        request.mockResponse === undefined
          ? this.deps.targets.route(request.model)
          : { provider: MOCK_PROVIDER, model: request.model };
      guarded = this.guard(input, request);
      if (guarded.refusal) throw guarded.refusal;
      assertWithinSpend(input.principal, this.deps.config.tiers);
      reservation = await this.deps.limiter.reserve(input.principal, reservationEstimate(request));
    } catch (error) {
      await finish(this.recordRejection(input, started, error, guarded.flags));
      throw error;
    }
    // Records the usage row (with the guard's flags) and settles the limiter with the real tokens; `done` resolves
    // once the row is journaled (before the answer ends).
    const settle = (outcome: Outcome, memory?: { recall: Recall; sent: ChatTurn[] }) => {
      const recorded = this.record(input, request, route, started, { ...outcome, guardFlags: guarded.flags }, memory);
      reservation.settle(recorded.tokens);
      return { costUsd: recorded.costUsd, done: finish(recorded.journaled) };
    };
    const cached = await this.fromCache(input, request, route);
    if (cached.hit) {
      const { hit, headers } = cached;
      await settle({ usage: ZERO_USAGE, statusCode: 200, cacheHit: hit.match, savedCostUsd: hit.costUsd }).done;
      const all = { ...reservation.headers, ...headers, ...guarded.headers };
      if (!request.stream) return { headers: all, stream: false, completion: hit.completion };
      return {
        headers: all,
        stream: true,
        model: request.model,
        chunks: replayStream(hit.completion, request.clientWantsUsage),
      };
    }
    let destination: Destination;
    try {
      destination = await this.deps.targets.prepare(input.principal, route);
    } catch (error) {
      await settle(this.failureOutcome(error, input.signal)).done;
      throw error;
    }
    const sent = request.body.messages as ChatTurn[];
    const recall = await this.recall(input, sent);
    if (recall.message) request.body.messages = withMemory(sent, recall.message) as typeof request.body.messages;
    const headers = {
      ...reservation.headers,
      ...memoryHeaders(recall, input.memory),
      ...cached.headers,
      ...guarded.headers,
    };
    // On success the answer also goes into the response cache (when the request opted in).
    const record = (outcome: Outcome, completion?: ChatCompletion) => {
      const { costUsd, done } = settle(outcome, { recall, sent });
      if (completion && outcome.statusCode === 200) cached.store?.(completion, costUsd);
      return done;
    };

    const adapter = input.adapter ?? adapterFor(route.provider);
    const options = { signal: input.signal, timeoutMs: this.deps.config.http.requestTimeoutMs };
    const callStarted = performance.now();
    const sinceCall = () => Math.round(performance.now() - callStarted);
    try {
      if (!request.stream) {
        const placed = await destination.place((t) => adapter.complete(t, request.body, options));
        placed.release();
        const completion = placed.value;
        await record(
          {
            usage: completion.usage,
            statusCode: 200,
            completionText: completion.choices[0]?.message.content ?? "",
            upstreamMs: sinceCall(),
          },
          completion,
        );
        return { headers, stream: false, completion };
      }
      const placed = await destination.place((t) => adapter.stream(t, request.body, options));
      // The backend stays held (local mode's least-busy count) until the stream has been fully relayed.
      // A stream is assembled as it passes only when its answer will be cached.
      const assembled = cached.store ? new CompletionAssembler() : undefined;
      const source = assembled ? assembled.watch(placed.value) : placed.value;
      const chunks = this.observe(source, request, input.signal, started, chatDelta, (outcome) => {
        placed.release();
        return record({ ...outcome, upstreamMs: sinceCall() }, assembled?.completion());
      });
      return { headers, stream: true, model: request.model, chunks };
    } catch (error) {
      await record(this.failureOutcome(error, input.signal));
      throw error;
    }
  }

  /**
   * POST /v1/completions (legacy text completions): same routing, keys, limits and usage recording as chat, for
   * providers that serve `/completions` (400 for the others); no memory (the prompt is raw text, not a conversation).
   */
  async completeText(input: ChatInput): Promise<TextResult> {
    const started = performance.now();
    const finish = this.track();
    let request: ParsedChatRequest;
    let route: Route;
    let reservation: Reservation;
    let adapter: ProviderAdapter;
    try {
      request = parseTextCompletionRequest(input.body);
      route = this.deps.targets.route(request.model);
      adapter = adapterFor(route.provider);
      if (!adapter.completeText || !adapter.streamText) {
        throw new InvalidRequestError(
          `The provider ${route.provider.name} does not offer text completions; use /v1/chat/completions.`,
          { code: "unsupported_endpoint", param: "model" },
        );
      }
      assertWithinSpend(input.principal, this.deps.config.tiers);
      reservation = await this.deps.limiter.reserve(input.principal, reservationEstimate(request));
    } catch (error) {
      await finish(this.recordRejection(input, started, error));
      throw error;
    }
    const record = (outcome: Outcome) => {
      const { tokens, journaled } = this.record(input, request, route, started, outcome);
      reservation.settle(tokens);
      return finish(journaled);
    };
    const options = { signal: input.signal, timeoutMs: this.deps.config.http.requestTimeoutMs };
    const callStarted = performance.now();
    const sinceCall = () => Math.round(performance.now() - callStarted);
    const body = request.body as unknown as Record<string, unknown>;
    try {
      if (!request.stream) {
        const destination = await this.deps.targets.prepare(input.principal, route);
        const placed = await destination.place((t) => adapter.completeText!(t, body, options));
        placed.release();
        const completion = placed.value;
        await record({
          usage: completion.usage,
          statusCode: 200,
          completionText: completion.choices[0]?.text ?? "",
          upstreamMs: sinceCall(),
        });
        return { headers: reservation.headers, stream: false, completion };
      }
      const destination = await this.deps.targets.prepare(input.principal, route);
      const placed = await destination.place((t) => adapter.streamText!(t, body, options));
      const chunks = this.observe(
        placed.value,
        request,
        input.signal,
        started,
        (c) => c.choices[0]?.text,
        (outcome) => {
          placed.release();
          return record({ ...outcome, upstreamMs: sinceCall() });
        },
      );
      return { headers: reservation.headers, stream: true, chunks };
    } catch (error) {
      await record(this.failureOutcome(error, input.signal));
      throw error;
    }
  }

  /** POST /v1/embeddings: same routing, keys and usage recording, no streaming. */
  async embed(input: ChatInput): Promise<{ headers: Record<string, string>; response: EmbeddingResponse }> {
    const started = performance.now();
    const finish = this.track();
    let body: ReturnType<typeof parseEmbeddingRequest>;
    let route: Route;
    let reservation: Reservation;
    try {
      body = parseEmbeddingRequest(input.body);
      route = this.deps.targets.route(body.model);
      if (!adapterFor(route.provider).embed) {
        throw new InvalidRequestError(`The provider ${route.provider.name} does not offer embeddings.`, {
          code: "unsupported_endpoint",
          param: "model",
        });
      }
      assertWithinSpend(input.principal, this.deps.config.tiers);
      reservation = await this.deps.limiter.reserve(input.principal, Math.ceil(JSON.stringify(body.input).length / 4));
    } catch (error) {
      await finish(this.recordRejection(input, started, error));
      throw error;
    }
    const request = {
      body: { model: body.model, messages: [] },
      model: body.model,
      stream: false,
      clientWantsUsage: false,
    } as unknown as ParsedChatRequest;
    const record = (outcome: Outcome) => {
      const { tokens, journaled } = this.record(input, request, route, started, outcome);
      reservation.settle(tokens);
      return finish(journaled);
    };
    try {
      const options = { signal: input.signal, timeoutMs: this.deps.config.http.requestTimeoutMs };
      const embed = adapterFor(route.provider).embed!;
      const destination = await this.deps.targets.prepare(input.principal, route);
      const placed = await destination.place((t) => embed(t, body as EmbeddingRequest, options));
      placed.release();
      const response = placed.value;
      const tokens = response.usage?.prompt_tokens ?? 0;
      await record({ usage: { prompt_tokens: tokens, completion_tokens: 0, total_tokens: tokens }, statusCode: 200 });
      return { headers: reservation.headers, response };
    } catch (error) {
      await record(this.failureOutcome(error, input.signal));
      throw error;
    }
  }

  /** Shutdown has begun: requests cut from now on (by the drain deadline closing their sockets) are recorded as
   * `server_shutdown` rather than as the client's leaving. */
  beginShutdown(): void {
    this.shuttingDown = true;
  }

  /** Resolves once every request in flight has its usage row journaled (cut streams included), or at the timeout. */
  async settled(timeoutMs: number): Promise<void> {
    if (this.inFlight === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.onIdle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Requests in flight: each ends (exactly once) when its usage row is journaled. */
  private track(): (journaled: Promise<void>) => Promise<void> {
    this.inFlight++;
    let finished = false;
    return async (journaled) => {
      try {
        await journaled;
      } finally {
        if (!finished) {
          finished = true;
          if (--this.inFlight === 0) this.onIdle?.();
        }
      }
    };
  }

  /** How a failed request is recorded: the caller gone (499, or `server_shutdown` once shutdown has begun), or the
   * error's own status. */
  private failureOutcome(error: unknown, signal: AbortSignal): Outcome {
    return signal.aborted ? this.callerGone() : outcomeOf(error);
  }

  private callerGone(): Outcome {
    return { statusCode: 499, errorCode: this.shuttingDown ? "server_shutdown" : "client_closed_request" };
  }

  /** A request refused before the provider call (invalid body, unknown model, 402, 429): a row without tokens. */
  private recordRejection(input: ChatInput, started: number, error: unknown, guardFlags: string[] = []): Promise<void> {
    const raw = (typeof input.body === "object" && input.body !== null ? input.body : {}) as Record<string, unknown>;
    const outcome = this.failureOutcome(error, input.signal);
    return this.deps.usage.record({
      ...this.identity(input),
      provider: null,
      model: typeof raw.model === "string" ? raw.model.slice(0, 256) : "",
      promptTokens: 0,
      completionTokens: 0,
      cachedTokens: 0,
      totalTokens: 0,
      costUsd: 0,
      costUnknown: false,
      usageEstimated: false,
      latencyMs: Math.round(performance.now() - started),
      timeToFirstTokenMs: null,
      statusCode: outcome.statusCode,
      errorCode: outcome.errorCode ?? null,
      stream: raw.stream === true,
      retrievalCalls: 0,
      retrievalLatencyMs: 0,
      createdAt: new Date().toISOString(),
      guardFlags: guardFlags.length > 0 ? guardFlags : null,
    });
  }

  /**
   * The guard's verdict under the caller's tier: nothing when off; when flag, headers (and the usage row's flag);
   * when block, a 400 content_policy_violation naming the rules (thrown: recorded as a refused request).
   */
  private guard(input: ChatInput, request: ParsedChatRequest): GuardVerdict {
    const { guard, metrics, config } = this.deps;
    const tier = config.tiers.byName.get(input.principal.tier);
    const mode = tier?.guard ?? "off";
    if (!guard || mode === "off") return { flags: [], headers: {} };
    const text = callerText(promptTurns(request) as Array<{ role: string; content?: unknown }>);
    const flags = guard.inspect(text, input.principal.apiKeyId, input.clientAddress);
    if (flags.length === 0) return { flags, headers: {} };
    for (const rule of flags) metrics.guardFlags.inc({ rule, action: mode });
    if (mode === "block") {
      const refusal = new InvalidRequestError(
        `This request was refused by the content policy (${flags.join(", ")}). If this is a mistake, contact your administrator.`,
        { code: "content_policy_violation" },
      );
      return { flags, headers: {}, refusal };
    }
    return { flags, headers: { "x-perpetual-guard": "flagged", "x-perpetual-guard-rules": flags.join(",") } };
  }

  private identity(input: ChatInput) {
    return {
      requestId: input.requestId,
      clientRequestId: input.clientRequestId,
      userId: input.principal.userId,
      apiKeyId: input.principal.apiKeyId,
      endpoint: input.endpoint,
      conversationId: input.conversationId,
    };
  }

  /** Passes chunks through as they come, noting time to first token, text and usage; records when the stream ends. */
  private async *observe<C extends StreamedChunk>(
    source: AsyncIterable<C>,
    request: ParsedChatRequest,
    signal: AbortSignal,
    started: number,
    textOf: (chunk: C) => string | null | undefined,
    record: (o: Outcome) => Promise<void>,
  ): AsyncIterable<C> {
    let usage: ChatUsage | undefined;
    let firstTokenMs: number | null = null;
    let text = "";
    let outcome: Outcome | undefined;
    try {
      for await (const chunk of source) {
        // The first chunk with a choice: a passed-through Responses stream opens with events that carry none.
        if (chunk.choices.length > 0) firstTokenMs ??= Math.round(performance.now() - started);
        if (chunk.usage) usage = chunk.usage;
        const delta = textOf(chunk);
        if (delta) text += delta;
        if (!request.clientWantsUsage && chunk.usage) {
          // We asked for usage upstream; a client who did not ask must not see the extra chunk.
          if (chunk.choices.length === 0) continue;
          yield { ...chunk, usage: undefined };
          continue;
        }
        yield chunk;
      }
      // An SDK stream whose request was aborted ends quietly: the client left.
      outcome = signal.aborted
        ? { ...this.callerGone(), usage, completionText: text, firstTokenMs }
        : { usage, statusCode: 200, completionText: text, firstTokenMs };
    } catch (error) {
      outcome = { ...this.failureOutcome(error, signal), usage, completionText: text, firstTokenMs };
      throw error;
    } finally {
      // Reached without an outcome when the consumer stopped early: the client went away mid-stream. The stream
      // ends (and [DONE] is sent) only once the row is journaled.
      await record(outcome ?? { ...this.callerGone(), usage, completionText: text, firstTokenMs });
    }
  }

  private recall(input: ChatInput, sent: ChatTurn[]): Promise<Recall> {
    if (!input.memory) return Promise.resolve({ used: 0, tokens: 0, status: "off", calls: 0, latencyMs: 0 });
    return this.deps.memory.recall(input.principal.userId, sent, input.memory, input.conversationId);
  }

  private record(
    input: ChatInput,
    request: ParsedChatRequest,
    route: Route,
    started: number,
    outcome: Outcome,
    memory?: { recall: Recall; sent: ChatTurn[] },
  ): { tokens: number; costUsd: number; journaled: Promise<void> } {
    const provider = route.provider.name;
    const { model } = route;
    const mock = isMock(route.provider);
    const reported = outcome.usage;
    // No usage from the provider: estimate what was served, including the part of an aborted stream. The mock
    // provider's usage is the tokenizer's estimate.
    const estimated = mock || (!reported && (outcome.statusCode < 400 || outcome.statusCode === 499));
    const usage = reported ?? (estimated ? estimatedUsage(request, outcome.completionText ?? "") : undefined);
    const tokens = {
      promptTokens: usage?.prompt_tokens ?? 0,
      completionTokens: usage?.completion_tokens ?? 0,
      cachedTokens: usage?.prompt_tokens_details?.cached_tokens ?? 0,
    };
    const cost = mock ? { costUsd: 0, known: true } : costOf(this.deps.config.models, provider, model, tokens);
    this.observeMetrics(provider, model, tokens, cost.costUsd, outcome);
    const journaled = this.deps.usage.record({
      ...this.identity(input),
      provider,
      model,
      ...tokens,
      totalTokens: tokens.promptTokens + tokens.completionTokens,
      costUsd: cost.costUsd,
      costUnknown: !cost.known,
      usageEstimated: estimated,
      latencyMs: Math.round(performance.now() - started),
      timeToFirstTokenMs: outcome.firstTokenMs ?? null,
      statusCode: outcome.statusCode,
      errorCode: outcome.errorCode ?? null,
      stream: request.stream,
      retrievalCalls: memory?.recall.calls ?? 0,
      retrievalLatencyMs: memory?.recall.latencyMs ?? 0,
      createdAt: new Date().toISOString(),
      cacheHit: outcome.cacheHit ?? null,
      savedCostUsd: outcome.savedCostUsd ?? 0,
      guardFlags: outcome.guardFlags?.length ? outcome.guardFlags : null,
      ...(memory &&
        outcome.statusCode === 200 &&
        input.memory &&
        writesMemory(input.memory.mode) && { memory: exchangeToRemember(memory.sent, outcome.completionText ?? "") }),
    });
    return { tokens: tokens.promptTokens + tokens.completionTokens, costUsd: cost.costUsd, journaled };
  }

  /**
   * The response cache's part of a request: a hit (answered without the provider), or on a miss the headers to send
   * and `store`, which caches the answer once it is complete. Nothing when the request did not opt in, is not
   * deterministic (unless forced), or uses a mock answer.
   */
  private async fromCache(
    input: ChatInput,
    request: ParsedChatRequest,
    route: Route,
  ): Promise<{
    hit?: CacheHit;
    headers: Record<string, string>;
    store?: (completion: ChatCompletion, costUsd: number) => void;
  }> {
    const { cache, metrics, memory } = this.deps;
    const controls = input.cache;
    if (!cache || !controls || controls.mode === "off" || isMock(route.provider)) {
      return { headers: {} };
    }
    const body = request.body as unknown as Record<string, unknown>;
    if (!cacheable(body, controls.force)) return { headers: { "x-perpetual-cache": "skip" } };
    // Memory changes what is sent: answers with and without it are cached apart.
    const keys = cache.keysOf(input.principal.userId, { ...body, "x-perpetual-memory": input.memory?.mode ?? "off" });
    let vector: Float32Array | undefined;
    let hit = cache.exact(keys.exact);
    if (!hit && controls.mode === "semantic" && keys.lastUserText) {
      // An embedder that fails only costs the semantic side: exact keys still work.
      if (cache.usesVectors) {
        [vector] = await memory.embedder.embed([keys.lastUserText], input.signal).catch(() => [undefined]);
      }
      hit = cache.similar(keys, vector);
    }
    if (hit) {
      metrics.cacheLookups.inc({ outcome: hit.match });
      return { hit, headers: { "x-perpetual-cache": "hit", "x-perpetual-cache-match": hit.match } };
    }
    metrics.cacheLookups.inc({ outcome: "miss" });
    const provider = route.provider.name;
    return {
      headers: { "x-perpetual-cache": "miss" },
      store: (completion, costUsd) => cache.put(keys, { completion, costUsd, provider, vector }),
    };
  }

  private observeMetrics(provider: string, model: string, tokens: TokenUsage, costUsd: number, outcome: Outcome) {
    const { metrics } = this.deps;
    const label = metrics.modelLabel(model);
    if (tokens.promptTokens) metrics.tokensTotal.inc({ type: "prompt", model: label }, tokens.promptTokens);
    if (tokens.completionTokens) metrics.tokensTotal.inc({ type: "completion", model: label }, tokens.completionTokens);
    if (tokens.cachedTokens) metrics.tokensTotal.inc({ type: "cached", model: label }, tokens.cachedTokens);
    if (costUsd > 0) metrics.costTotal.inc({ model: label }, costUsd);
    if (outcome.upstreamMs !== undefined) metrics.upstreamDuration.observe({ provider }, outcome.upstreamMs / 1000);
    if (outcome.firstTokenMs) metrics.timeToFirstToken.observe({ provider }, outcome.firstTokenMs / 1000);
  }
}

/** What `observe` reads of a streamed chunk, chat or text completion alike. */
interface StreamedChunk {
  usage?: ChatUsage | null;
  choices: unknown[];
}

const chatDelta = (chunk: ChatChunk) => chunk.choices[0]?.delta?.content;

export type TextResult = { headers: Record<string, string> } & (
  | { stream: false; completion: TextCompletion }
  | { stream: true; chunks: AsyncIterable<TextCompletion> }
);

/** The memory message goes after the client's leading system/developer messages, before the conversation. */
function withMemory(messages: ChatTurn[], memory: ChatTurn): ChatTurn[] {
  const firstTurn = messages.findIndex((m) => m.role !== "system" && m.role !== "developer");
  const at = firstTurn < 0 ? messages.length : firstTurn;
  return [...messages.slice(0, at), memory, ...messages.slice(at)];
}

function memoryHeaders(recall: Recall, controls: MemoryControls | undefined): Record<string, string> {
  return {
    "x-perpetual-memory": recall.status,
    "x-perpetual-memories-used": String(recall.used),
    "x-perpetual-memory-tokens": String(recall.tokens),
    ...(controls && { "x-perpetual-memory-budget": String(controls.budgetTokens) }),
  };
}

/** Prompt size by characters (a tokenizer would cost the hot path more than the estimate is worth) plus the
 * completion allowance; settled to the provider's real count afterwards. */
const DEFAULT_COMPLETION_ALLOWANCE = 512;
function reservationEstimate(request: ParsedChatRequest): number {
  let chars = 0;
  for (const m of promptTurns(request)) {
    chars += typeof m.content === "string" ? m.content.length : JSON.stringify(m.content ?? "").length;
  }
  const body = request.body as { max_completion_tokens?: number | null; max_tokens?: number | null };
  return Math.ceil(chars / 4) + (body.max_completion_tokens ?? body.max_tokens ?? DEFAULT_COMPLETION_ALLOWANCE);
}

interface Outcome {
  usage?: ChatUsage | null;
  /** From the provider call's start to its last byte. */
  upstreamMs?: number;
  statusCode: number;
  errorCode?: string | null;
  completionText?: string;
  firstTokenMs?: number | null;
  /** Answered from the response cache: how it matched, and what the original call cost. */
  cacheHit?: "exact" | "semantic";
  savedCostUsd?: number;
  guardFlags?: string[];
}

/** The guard's verdict on a request: the rules it broke, the headers that say so, and the 400 when its tier blocks. */
interface GuardVerdict {
  flags: GuardRule[];
  headers: Record<string, string>;
  refusal?: ApiError;
}

const ZERO_USAGE: ChatUsage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };

function estimatedUsage(request: ParsedChatRequest, completionText: string): ChatUsage {
  const prompt = estimatePromptTokens(promptTurns(request));
  const completion = estimateTokens(completionText);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

function outcomeOf(error: unknown): Outcome {
  if (error instanceof UpstreamError)
    return { statusCode: error.status || 502, errorCode: error.details.code ?? "upstream_error" };
  if (error instanceof ApiError) return { statusCode: error.status, errorCode: error.code };
  return { statusCode: 500, errorCode: "internal_error" };
}
