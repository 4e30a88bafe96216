import { createHash } from "node:crypto";
import type { Database } from "../db";
import { claimDue, OutboxWorker, retryLater } from "../db/outbox";
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
    super({ db: options.db, table: "memory_outbox", intervalMs: options.intervalMs ?? 500 });
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
      for (const row of rows) {
        if (await this.process(row)) stored++;
      }
    }
  }

  private claim(): Promise<OutboxRow[]> {
    return claimDue<OutboxRow>(
      this.options.db,
      "memory_outbox",
      "id::text, request_id, user_id, conversation_id, model, messages, created_at, attempts",
      this.options.batchSize ?? 50,
      this.options.leaseSeconds ?? 60,
    );
  }

  private async process(row: OutboxRow): Promise<boolean> {
    const { db, store, embedder, logger } = this.options;
    const memories = store.forUser(row.user_id);
    try {
      const chunks = toChunks(row, this.options.chunkTokens);
      const dense = await embedder.embed(chunks.map((c) => c.text));
      await memories.upsert(chunks.map((c, i) => ({ ...c, dense: dense[i]!, sparse: bm25Document(c.text) })));
      const done = await db.query("delete from memory_outbox where id = $1 returning 1", [row.id]);
      // The row vanished while we worked: the user was erased. Take back what was just written.
      if (done.length === 0) await memories.delete({ requestId: row.request_id });
      if (this.failing) logger.info("memory writes resumed");
      this.failing = false;
      return true;
    } catch (error) {
      if (!this.failing) logger.warn("memory write failed; will retry", { request_id: row.request_id, error });
      this.failing = true;
      await retryLater(db, "memory_outbox", [row.id], row.attempts, error);
      return false;
    }
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
