import { createHash } from "node:crypto";
import type { Clock } from "../clock";
import type { Database } from "../db";
import { OutboxWorker } from "../db/outbox";
import type { Logger } from "../log";
import type { Embedder } from "./embedders/types";
import { REMEMBERED_CHARS } from "./recall";
import { bm25Document } from "./sparse";
import type { MemoryStore, NewMemory } from "./store";
import { chunkText, clip } from "./text";

export interface OutboxMessage {
  role: "user" | "assistant";
  content: string;
}

type OutboxRow = {
  id: string;
  request_id: string;
  user_id: string;
  conversation_id: string | null;
  model: string | null;
  messages: OutboxMessage[];
  created_at: Date | string;
  attempts: number;
};

export interface MemoryOutboxOptions {
  db: Database;
  store: MemoryStore;
  embedder: Embedder;
  logger: Logger;
  chunkTokens: number;
  /** Opens the store if it is not open yet; false while it is away (the drain waits). */
  storeReady?: () => Promise<boolean>;
  intervalMs?: number;
  clock: Clock;
  batchSize?: number;
  /** How long a claimed row is left to its worker before another may take it. */
  leaseSeconds?: number;
}

/** A point id (UUID-shaped, as Qdrant takes) derived from its parts: the same parts always give the same id. */
export function memoryId(...parts: Array<string | number>): string {
  const h = createHash("sha256").update(parts.join("\u0000")).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((Number.parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * Drains memory_outbox into the vector store: claims due rows (a lease, so several replicas share the work and a
 * crashed worker's rows come back), chunks and embeds them, upserts, then deletes the row. Failures back off
 * exponentially (up to 10 minutes) and keep the row; nothing is dropped.
 */
export class MemoryOutbox extends OutboxWorker {
  private failing = false;

  constructor(private readonly options: MemoryOutboxOptions) {
    super({ db: options.db, table: "memory_outbox", intervalMs: options.intervalMs ?? 500, clock: options.clock });
  }

  /** drain() resolves with the number of exchanges stored. */
  protected async drainDue(): Promise<number> {
    let stored = 0;
    if (this.options.storeReady && !(await this.options.storeReady())) return stored;
    for (;;) {
      let rows: OutboxRow[];
      try {
        rows = await this.claim();
      } catch (error) {
        this.options.logger.warn("memory outbox unreachable", { error });
        return stored;
      }
      if (rows.length === 0) return stored;
      stored += await this.processBatch(rows);
    }
  }

  private claim(): Promise<OutboxRow[]> {
    return this.claimDue<OutboxRow>(
      "id::text, request_id, user_id, conversation_id, model, messages, created_at, attempts",
      this.options.batchSize ?? 50,
      this.options.leaseSeconds ?? 60,
    );
  }

  /**
   * Stores a claimed batch: every row's chunks are written at once (the store group-commits them: one fsync, not
   * one per exchange), then the stored rows are deleted in one statement. A row that fails is retried later on its
   * own; the others are not held back by it.
   */
  private async processBatch(rows: OutboxRow[]): Promise<number> {
    const { db, logger } = this.options;
    const outcomes = await Promise.allSettled(rows.map((row) => this.store(row)));
    const stored = rows.filter((_, i) => outcomes[i]!.status === "fulfilled");
    const failed = rows.flatMap((row, i) => {
      const outcome = outcomes[i]!;
      return outcome.status === "rejected" ? [{ row, error: outcome.reason as unknown }] : [];
    });
    // Counted once removed from the outbox (an erased user's vanished row included).
    let deleted = 0;
    if (stored.length > 0) {
      try {
        const gone = await db.query<{ id: string }>(
          "delete from memory_outbox where id = any($1::bigint[]) returning id::text",
          [stored.map((row) => row.id)],
        );
        deleted = stored.length;
        // Rows that vanished while we worked: their users were erased. Take back what was just written.
        const still = new Set(gone.map((r) => r.id));
        for (const row of stored) {
          if (!still.has(row.id)) await this.options.store.forUser(row.user_id).delete({ requestId: row.request_id });
        }
      } catch (error) {
        // Stored but not deleted: the lease runs out and the rows are stored again (same ids: replaced, not added).
        logger.warn("memory outbox rows stored but not yet removed", { error });
      }
    }
    for (const { row, error } of failed) {
      // Logged once per outage, not once per row.
      if (!this.failing) logger.warn("memory write failed; will retry", { request_id: row.request_id, error });
      this.failing = true;
      await this.retryLater([row.id], row.attempts, error);
    }
    if (failed.length === 0 && stored.length > 0 && this.failing) {
      logger.info("memory writes resumed");
      this.failing = false;
    }
    return deleted;
  }

  private async store(row: OutboxRow): Promise<void> {
    const chunks = toChunks(row, this.options.chunkTokens);
    const dense = await this.options.embedder.embed(chunks.map((c) => c.text));
    await this.options.store
      .forUser(row.user_id)
      .upsert(chunks.map((c, i) => ({ ...c, dense: dense[i]!, sparse: bm25Document(c.text) })));
  }
}

/**
 * A chunk's id is its user, conversation, role and text: a retry overwrites rather than adds, and the same text said
 * again in the same conversation (or, without one, by the same user) is stored once, dated and attributed to the
 * latest request that said it.
 */
function toChunks(row: OutboxRow, chunkTokens: number): Omit<NewMemory, "dense" | "sparse">[] {
  // A millisecond apart per chunk, so the exchange keeps its order (user turn, then reply) when sorted by time.
  const base = new Date(row.created_at).getTime();
  const chunks = new Map<string, Omit<NewMemory, "dense" | "sparse">>();
  for (const message of row.messages) {
    // Bounded whatever the row holds (rows written before the cap existed included).
    for (const text of chunkText(clip(message.content, REMEMBERED_CHARS), chunkTokens)) {
      const id = memoryId(row.user_id, row.conversation_id ?? "", message.role, text);
      chunks.set(id, {
        id,
        conversationId: row.conversation_id,
        role: message.role,
        text,
        createdAt: new Date(base + chunks.size).toISOString(),
        model: row.model,
        requestId: row.request_id,
      });
    }
  }
  return [...chunks.values()];
}
