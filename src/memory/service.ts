import type { Config } from "../config";
import type { Database } from "../db";
import { invalidRequest } from "../errors";
import type { Logger } from "../log";
import type { Metrics } from "../metrics";
import type { Embedder } from "./embedders/types";
import { MemoryOutbox } from "./outbox";
import { type ChatTurn, memoryMessage, recallQuery, selectMemories } from "./recall";
import { bm25Query } from "./sparse";
import type { MemoryDeletion, MemoryPage, MemoryStore } from "./store";

export type MemoryMode = Config["memory"]["defaultMode"];
export type MemoryScope = Config["memory"]["defaultScope"];

export interface MemoryControls {
  mode: MemoryMode;
  scope: MemoryScope;
}

const MEMORY_HEADER = "x-perpetual-memory";
const MEMORY_SCOPE_HEADER = "x-perpetual-memory-scope";

/** Per-request memory controls from headers, defaults from config; a bad value is a 400 naming the header. */
function memoryControls(header: (name: string) => string | undefined, defaults: Config["memory"]): MemoryControls {
  const mode = header(MEMORY_HEADER)?.trim().toLowerCase() || defaults.defaultMode;
  const scope = header(MEMORY_SCOPE_HEADER)?.trim().toLowerCase() || defaults.defaultScope;
  if (!["on", "off", "read-only", "write-only"].includes(mode)) {
    throw invalidRequest(`${MEMORY_HEADER} must be on, off, read-only or write-only.`, "invalid_header", MEMORY_HEADER);
  }
  if (!["user", "conversation"].includes(scope)) {
    throw invalidRequest(`${MEMORY_SCOPE_HEADER} must be user or conversation.`, "invalid_header", MEMORY_SCOPE_HEADER);
  }
  return { mode: mode as MemoryMode, scope: scope as MemoryScope };
}

const readsMemory = (mode: MemoryMode) => mode === "on" || mode === "read-only";
export const writesMemory = (mode: MemoryMode) => mode === "on" || mode === "write-only";

export interface Recall {
  /** The system message to add, when memories were found. */
  message?: { role: "system"; content: string };
  used: number;
  /** ok | off | empty | timeout | unavailable: reported in the x-perpetual-memory response header. */
  status: "ok" | "off" | "empty" | "timeout" | "unavailable";
  calls: number;
  latencyMs: number;
}

/** Fused candidates handed to the budget fill: enough for a 2,000-token budget of short turns and the group boost. */
const CANDIDATES = 200;

/** Recall before the provider call, the write-back outbox after it, and the caller-scoped memory API. */
export class MemoryService {
  readonly outbox: MemoryOutbox;
  /** Logged once per outage, not once per request. */
  private recallFailing = false;
  private storeOpen = false;
  private openFailing = false;

  constructor(
    private readonly deps: {
      store: MemoryStore;
      embedder: Embedder;
      db: Database;
      logger: Logger;
      metrics: Metrics;
      settings: Config["memory"];
    },
  ) {
    this.outbox = new MemoryOutbox({
      ...deps,
      chunkTokens: deps.settings.chunkTokens,
      storeReady: () => this.openStore(),
    });
  }

  /** This request's controls: x-perpetual-memory / x-perpetual-memory-scope headers over the configured defaults. */
  controlsFrom(header: (name: string) => string | undefined): MemoryControls {
    return memoryControls(header, this.deps.settings);
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
    if (!readsMemory(controls.mode)) return { used: 0, status: "off", calls: 0, latencyMs: 0 };
    const query = recallQuery(messages);
    if (!query.trim()) return { used: 0, status: "empty", calls: 0, latencyMs: 0 };
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
        this.find(
          userId,
          query,
          {
            limit: CANDIDATES,
            ...(controls.scope === "conversation" && { conversationId: conversationId ?? "" }),
          },
          controller.signal,
        ),
        timeout,
      ]);
      const latencyMs = Math.round(performance.now() - started);
      metrics.retrievalsTotal.inc();
      metrics.retrievalDuration.observe(latencyMs / 1000);
      if (result === "timeout") {
        metrics.memoryRecallFailures.inc({ reason: "timeout" });
        return { used: 0, status: "timeout", calls: 1, latencyMs };
      }
      if (this.recallFailing) this.deps.logger.info("memory recall works again");
      this.recallFailing = false;
      const chosen = selectMemories(result, messages, settings.tokenBudget);
      if (chosen.length === 0) return { used: 0, status: "empty", calls: 1, latencyMs };
      return { message: memoryMessage(chosen), used: chosen.length, status: "ok", calls: 1, latencyMs };
    } catch (error) {
      const latencyMs = Math.round(performance.now() - started);
      metrics.memoryRecallFailures.inc({ reason: "unavailable" });
      if (!this.recallFailing) this.deps.logger.warn("memory recall failing; answering without memory", { error });
      this.recallFailing = true;
      return { used: 0, status: "unavailable", calls: 1, latencyMs };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Account erasure: every point of the user (outbox rows go with the user row). */
  forgetUser(userId: string): Promise<number> {
    return this.deps.store.forUser(userId).delete({ all: true });
  }

  /** The memory API: the caller's memories, newest first. Rejects InvalidCursorError for a foreign cursor. */
  list(userId: string, options: { conversationId?: string; limit: number; after?: string }): Promise<MemoryPage> {
    return this.deps.store.forUser(userId).list(options);
  }

  /** Hybrid search of one user's memories: recall's first step, and the memory API's search. */
  async find(userId: string, text: string, options: { limit: number; conversationId?: string }, signal?: AbortSignal) {
    const [dense] = await this.deps.embedder.embed([text], signal);
    return this.deps.store.forUser(userId).search({ dense: dense!, sparse: bm25Query(text), ...options });
  }

  /**
   * Deletes stored memories and, for a conversation or everything, the exchanges still waiting in the outbox (as
   * the user, under RLS), so they do not reappear when the worker gets to them.
   */
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
    return { stored: await this.deps.store.forUser(userId).delete(which), pending };
  }
}
