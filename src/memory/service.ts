import { randomUUID } from "node:crypto";
import { type Clock, systemClock } from "../clock";
import type { Config, Tiers } from "../config";
import type { Database } from "../db";
import { storableJson } from "../db/text";
import { InvalidRequestError } from "../errors";
import type { Logger } from "../log";
import type { Metrics } from "../metrics";
import type { Embedder } from "./embedders/types";
import { MemoryOutbox, memoryId } from "./outbox";
import { type ChatTurn, memberFloor, memoryMessage, recallQuery, selectMemories } from "./recall";
import { bm25Query } from "./sparse";
import type { MemoryDeletion, MemoryPage, MemoryStore, ScoredMemory } from "./store";

export type MemoryMode = Config["memory"]["defaultMode"];
export type MemoryScope = Config["memory"]["defaultScope"];

/** One turn of existing history to import, as `POST /v1/memories` takes it. */
export interface ImportedTurn {
  role: "user" | "assistant";
  text: string;
  /** ISO 8601; absent: now. */
  createdAt?: string;
  conversationId?: string;
  /** The client's id for the turn: importing it again (a retried call) queues nothing new. */
  clientId?: string;
}

export interface MemoryControls {
  mode: MemoryMode;
  scope: MemoryScope;
  /** Tokens of memory this request may get at most: the header's value within the tier's ceiling. */
  budgetTokens: number;
}

const MEMORY_HEADER = "x-perpetual-memory";
const MEMORY_SCOPE_HEADER = "x-perpetual-memory-scope";
const MEMORY_BUDGET_HEADER = "x-perpetual-memory-budget";

/**
 * Per-request memory controls from headers, defaults from config; a bad value is a 400 naming the header. The
 * budget's ceiling is the tier's max_memory_tokens within MEMORY_TOKEN_BUDGET; a budget above it is lowered to it
 * (a client need not know its tier's ceiling) and the response reports what applied.
 */
export function memoryControls(
  header: (name: string) => string | undefined,
  defaults: Config["memory"],
  tierCeiling: number | null = null,
  userMode: MemoryMode | null = null,
): MemoryControls {
  const ceiling = Math.min(tierCeiling ?? defaults.tokenBudget, defaults.tokenBudget);
  const mode = header(MEMORY_HEADER)?.trim().toLowerCase() || userMode || defaults.defaultMode;
  const scope = header(MEMORY_SCOPE_HEADER)?.trim().toLowerCase() || defaults.defaultScope;
  const budget = header(MEMORY_BUDGET_HEADER)?.trim();
  if (!["on", "off", "read-only", "write-only"].includes(mode)) {
    throw new InvalidRequestError(`${MEMORY_HEADER} must be on, off, read-only or write-only.`, {
      code: "invalid_header",
      param: MEMORY_HEADER,
    });
  }
  if (!["user", "conversation"].includes(scope)) {
    throw new InvalidRequestError(`${MEMORY_SCOPE_HEADER} must be user or conversation.`, {
      code: "invalid_header",
      param: MEMORY_SCOPE_HEADER,
    });
  }
  if (budget && !/^\d{1,9}$/.test(budget)) {
    throw new InvalidRequestError(
      `${MEMORY_BUDGET_HEADER} must be a whole number of tokens from 0 to ${ceiling} (this key's ceiling).`,
      { code: "invalid_header", param: MEMORY_BUDGET_HEADER },
    );
  }
  const budgetTokens = budget ? Math.min(Number(budget), ceiling) : ceiling;
  return { mode: mode as MemoryMode, scope: scope as MemoryScope, budgetTokens };
}

const readsMemory = (mode: MemoryMode) => mode === "on" || mode === "read-only";
export const writesMemory = (mode: MemoryMode) => mode === "on" || mode === "write-only";

export interface Recall {
  /** The system message to add, when memories were found. */
  message?: { role: "system"; content: string };
  used: number;
  /** Approximate tokens of the message (0 without one). */
  tokens: number;
  /**
   * Reported in the x-perpetual-memory response header. ok: memories injected; irrelevant: the user has memories
   * but none is relevant enough to this request; empty: nothing to recall (no memories, no query, or all already
   * in the request); off: not asked (mode or a zero budget); timeout / unavailable: the store was slow or away.
   */
  status: "ok" | "off" | "empty" | "irrelevant" | "timeout" | "unavailable";
  calls: number;
  latencyMs: number;
}

const noRecall = (status: Recall["status"], calls = 0, latencyMs = 0): Recall => ({
  used: 0,
  tokens: 0,
  status,
  calls,
  latencyMs,
});

/** Fused candidates handed to the budget fill: enough for a 2,000-token budget of short turns and the group boost. */
const CANDIDATES = 200;

/** Recall before the provider call, the write-back outbox after it, and the caller-scoped memory API. */
export class MemoryService {
  readonly outbox: MemoryOutbox;
  /** Logged once per outage, not once per request. */
  private recallFailing = false;
  private storeOpen = false;
  private openFailing = false;
  private readonly forgetListeners: Array<(userId: string) => Promise<void> | void> = [];

  constructor(
    private readonly deps: {
      store: MemoryStore;
      embedder: Embedder;
      db: Database;
      logger: Logger;
      metrics: Metrics;
      settings: Config["memory"];
      /** For each tier's memory ceiling (max_memory_tokens); without it MEMORY_TOKEN_BUDGET applies to all. */
      tiers?: Tiers;
      /** The outbox's retry schedule; default: the system clock. */
      clock?: Clock;
    },
  ) {
    this.outbox = new MemoryOutbox({
      ...deps,
      clock: deps.clock ?? systemClock,
      chunkTokens: deps.settings.chunkTokens,
      storeReady: () => this.openStore(),
    });
  }

  /**
   * This request's controls: x-perpetual-memory, -scope and -budget headers over the configured defaults; the
   * budget within the caller's tier's ceiling.
   */
  /** The header's mode, else the user's own default (`userMode`), else MEMORY_DEFAULT_MODE. */
  controlsFrom(
    header: (name: string) => string | undefined,
    tier?: string,
    userMode: MemoryMode | null = null,
  ): MemoryControls {
    const { settings, tiers } = this.deps;
    const ceiling = tier === undefined ? null : tiers?.byName.get(tier)?.maxMemoryTokens;
    return memoryControls(header, settings, ceiling, userMode);
  }

  /** The embedder memory uses (also the response cache's, for semantic matching). */
  get embedder(): Embedder {
    return this.deps.embedder;
  }

  get store(): MemoryStore {
    return this.deps.store;
  }

  /**
   * Opens the store (creating collections and indexes when missing) and starts draining the outbox. A store that is
   * away at start does not stop the server: recall answers without memory, and the outbox worker keeps trying to
   * open it before each drain, so writes wait in the outbox until it is back.
   */
  async start(): Promise<void> {
    await this.openStore();
    this.outbox.start();
  }

  private async openStore(): Promise<boolean> {
    if (this.storeOpen) return true;
    try {
      await this.deps.store.ready();
      this.storeOpen = true;
      if (this.openFailing) this.deps.logger.info("memory store opened");
    } catch (error) {
      if (!this.openFailing) this.deps.logger.warn("memory store unavailable; writes wait in the outbox", { error });
      this.openFailing = true;
    }
    return this.storeOpen;
  }

  async stop(): Promise<void> {
    await this.outbox.stop();
    await this.deps.store.close();
  }

  /** Never throws: a slow or failing store means an answer without memory, reported in the status. */
  async recall(
    userId: string,
    messages: readonly ChatTurn[],
    controls: MemoryControls,
    conversationId: string | null,
  ): Promise<Recall> {
    if (!readsMemory(controls.mode) || controls.budgetTokens === 0) return noRecall("off");
    const query = recallQuery(messages);
    if (!query.text.trim()) return noRecall("empty");
    const started = performance.now();
    const { metrics, settings } = this.deps;
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => {
        controller.abort();
        resolve("timeout");
      }, settings.recallTimeoutMs);
    });
    try {
      const result = await Promise.race([
        this.candidates(
          userId,
          query,
          controls.scope === "conversation" ? (conversationId ?? "") : undefined,
          controller.signal,
        ),
        timeout,
      ]);
      const latencyMs = Math.round(performance.now() - started);
      metrics.retrievalsTotal.inc();
      metrics.retrievalDuration.observe(latencyMs / 1000);
      if (result === "timeout") {
        metrics.memoryRecallFailures.inc({ reason: "timeout" });
        return noRecall("timeout", 1, latencyMs);
      }
      if (this.recallFailing) this.deps.logger.info("memory recall works again");
      this.recallFailing = false;
      const { chosen, tokens, irrelevant } = selectMemories(result, messages, {
        budgetTokens: controls.budgetTokens,
        minRelevance: settings.minRelevance,
      });
      const outcome = chosen.length > 0 ? "ok" : irrelevant ? "irrelevant" : "empty";
      metrics.memoryRecalls.inc({ outcome });
      if (outcome !== "ok") return noRecall(outcome, 1, latencyMs);
      return { message: memoryMessage(chosen), used: chosen.length, tokens, status: "ok", calls: 1, latencyMs };
    } catch (error) {
      const latencyMs = Math.round(performance.now() - started);
      metrics.memoryRecallFailures.inc({ reason: "unavailable" });
      if (!this.recallFailing) this.deps.logger.warn("memory recall failing; answering without memory", { error });
      this.recallFailing = true;
      return noRecall("unavailable", 1, latencyMs);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Queues existing history for memory through the write-back outbox (chunked, embedded and stored by the same
   * worker, with the turns' own dates). Each turn is one outbox row whose request id comes from the client id when
   * given (a retried import is not queued twice); the stored chunks' ids come from their text, as for write-back.
   * Resolves with each turn's request id, in order, and whether it was queued now or already known.
   */
  async import(userId: string, turns: readonly ImportedTurn[]): Promise<{ requestId: string; queued: boolean }[]> {
    const now = new Date().toISOString();
    const rows = turns.map((t) => ({
      request_id: `import_${(t.clientId === undefined ? randomUUID() : memoryId(userId, "import", t.clientId)).replaceAll("-", "")}`,
      conversation_id: t.conversationId ?? null,
      messages: [{ role: t.role, content: t.text }],
      created_at: t.createdAt ?? now,
    }));
    const inserted = await this.deps.db.query<{ request_id: string }>(
      `insert into memory_outbox (request_id, user_id, conversation_id, messages, created_at)
       select x.request_id, $2::uuid, x.conversation_id, x.messages, x.created_at
         from jsonb_to_recordset($1::jsonb) as x(request_id text, conversation_id text, messages jsonb,
                                                created_at timestamptz)
       on conflict (request_id) do nothing
       returning request_id`,
      [storableJson(rows), userId],
    );
    const queued = new Set(inserted.map((r) => r.request_id));
    return rows.map((r) => ({ requestId: r.request_id, queued: queued.has(r.request_id) }));
  }

  /** Recall's candidates: the hybrid search's, plus the turns around its most relevant hits when any is relevant. */
  private candidates(
    userId: string,
    query: { text: string; focus: string },
    conversationId: string | undefined,
    signal: AbortSignal,
  ): Promise<ScoredMemory[]> {
    const { minRelevance } = this.deps.settings;
    return this.find(
      userId,
      query.text,
      {
        focus: query.focus,
        limit: CANDIDATES,
        minRelevance: memberFloor(minRelevance),
        contextFrom: minRelevance,
        ...(conversationId !== undefined && { conversationId }),
      },
      signal,
    );
  }

  /** Account erasure: every point of the user (outbox rows go with the user row). */
  forgetUser(userId: string): Promise<number> {
    return this.deps.store.forUser(userId).delete({ all: true });
  }

  /** The memory API: the caller's memories, newest first. Rejects InvalidCursorError for a foreign cursor. */
  list(userId: string, options: { conversationId?: string; limit: number; after?: string }): Promise<MemoryPage> {
    return this.deps.store.forUser(userId).list(options);
  }

  /**
   * Hybrid search of one user's memories: recall's first step, and the memory API's search. `focus`: the part of
   * the text each result's relevance evidence is measured against (default: all of it).
   */
  async find(
    userId: string,
    text: string,
    {
      focus,
      ...options
    }: { limit: number; conversationId?: string; focus?: string; minRelevance?: number; contextFrom?: number },
    signal?: AbortSignal,
  ) {
    const [dense] = await this.deps.embedder.embed([text], signal);
    return this.deps.store.forUser(userId).search({
      dense: dense!,
      sparse: bm25Query(text),
      ...(focus !== undefined && { focus: bm25Query(focus) }),
      ...options,
    });
  }

  /**
   * Deletes stored memories and, for a conversation or everything, the exchanges still waiting in the outbox (as
   * the user, under RLS), so they do not reappear when the worker gets to them.
   */
  /** Called after memories of a user are deleted through `forget` (what was derived from them must go too). */
  onForget(listener: (userId: string) => Promise<void> | void): void {
    this.forgetListeners.push(listener);
  }

  async forget(userId: string, which: MemoryDeletion): Promise<{ stored: number; pending: number }> {
    let pending = 0;
    if ("all" in which || "conversationId" in which) {
      const rows = await this.deps.db.asUser(userId, (tx) =>
        "all" in which
          ? tx.query("delete from memory_outbox where user_id = $1 returning 1", [userId])
          : tx.query("delete from memory_outbox where user_id = $1 and conversation_id = $2 returning 1", [
              userId,
              which.conversationId,
            ]),
      );
      pending = rows.length;
    }
    const stored = await this.deps.store.forUser(userId).delete(which);
    for (const listener of this.forgetListeners) await listener(userId);
    return { stored, pending };
  }
}
