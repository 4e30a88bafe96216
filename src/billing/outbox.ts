import type { Clock } from "../clock";
import type { Database } from "../db";
import { OutboxWorker } from "../db/outbox";
import type { Logger } from "../log";
import type { PolarGateway, UsageEvent } from "./polar";

type OutboxRow = {
  id: string;
  request_id: string;
  user_id: string;
  provider: string | null;
  model: string;
  prompt_tokens: number;
  cached_tokens: number;
  completion_tokens: number;
  cost_usd: string;
  created_at: Date;
  attempts: number;
};

export interface BillingOutboxOptions {
  db: Database;
  polar: Pick<PolarGateway, "ingest">;
  eventName: string;
  logger: Logger;
  onSent?: (events: number) => void;
  intervalMs?: number;
  clock: Clock;
  /** Events per ingest call. */
  batchSize?: number;
  leaseSeconds?: number;
  /** Longest wait between attempts while Polar is failing. */
  maxRetryDelaySeconds?: number;
}

/**
 * Sends billing_outbox to Polar's event ingestion in batches, off the request path: claims due rows (a lease, so
 * replicas share the work), ingests them, deletes them. While Polar fails the rows stay and are retried with
 * backoff; each carries its request id as external_id, so a batch sent twice (Polar took it, we never heard back)
 * is billed once.
 */
export class BillingOutbox extends OutboxWorker {
  private failing = false;

  constructor(private readonly options: BillingOutboxOptions) {
    super({ db: options.db, table: "billing_outbox", intervalMs: options.intervalMs ?? 1_000, clock: options.clock });
  }

  /** Sends what is due now; drain() resolves with the number of events Polar accepted. */
  protected async drainDue(): Promise<number> {
    const { db, polar, logger } = this.options;
    let sent = 0;
    for (;;) {
      let rows: OutboxRow[];
      try {
        rows = await this.claimDue<OutboxRow>(
          `id::text, request_id, user_id, provider, model, prompt_tokens, cached_tokens, completion_tokens,
           cost_usd::text, created_at, attempts`,
          this.options.batchSize ?? 100,
          this.options.leaseSeconds ?? 60,
        );
      } catch (error) {
        logger.warn("billing outbox unreachable", { error });
        return sent;
      }
      if (rows.length === 0) return sent;
      try {
        const result = await polar.ingest(this.options.eventName, rows.map(toEvent));
        await db.query("delete from billing_outbox where id = any($1::bigint[])", [rows.map((r) => r.id)]);
        sent += result.inserted;
        this.options.onSent?.(result.inserted);
        if (this.failing) logger.info("billing events delivered again", { events: rows.length });
        this.failing = false;
      } catch (error) {
        if (!this.failing) logger.warn("billing events not delivered; will retry", { events: rows.length, error });
        this.failing = true;
        const attempts = Math.min(...rows.map((r) => r.attempts));
        const ids = rows.map((r) => r.id);
        await this.retryLater(ids, attempts, error, this.options.maxRetryDelaySeconds ?? 300);
        return sent;
      }
    }
  }
}

function toEvent(row: OutboxRow): UsageEvent {
  return {
    requestId: row.request_id,
    userId: row.user_id,
    provider: row.provider,
    model: row.model,
    promptTokens: row.prompt_tokens,
    cachedTokens: row.cached_tokens,
    completionTokens: row.completion_tokens,
    costUsd: Number(row.cost_usd),
    createdAt: new Date(row.created_at),
  };
}
