import type { Clock } from "../clock";
import type { Row, SqlExecutor } from "./types";

/** The transactional outboxes: rows written with their usage row, drained by background workers on every replica. */
export type OutboxTable = "memory_outbox" | "billing_outbox";

/**
 * A background worker over one outbox table: every `intervalMs` it runs `drainDue` (never twice at a time);
 * stop() waits for the run in progress. Subclasses claim rows with `claimDue` and put failures back with
 * `retryLater`. Times are the database's now() (rows are written with it, and replicas' clocks may differ from
 * it), moved by how far the injected clock runs ahead of real time: nothing in production, and in tests a jump
 * past a backoff instead of a wait.
 */
export abstract class OutboxWorker {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  constructor(private readonly outbox: { db: SqlExecutor; table: OutboxTable; intervalMs: number; clock: Clock }) {}

  /**
   * Claims up to `limit` due rows for `leaseSeconds`: several replicas share a table without taking the same row,
   * and a crashed worker's rows come back when the lease ends. Each claim counts as an attempt.
   */
  protected claimDue<T extends Row>(columns: string, limit: number, leaseSeconds: number): Promise<T[]> {
    const { db, table } = this.outbox;
    return db.query<T>(
      `update ${table} set attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => $2::float8 + $3::float8)
        where id in (select id from ${table} where next_attempt_at <= now() + make_interval(secs => $3::float8)
                     order by id limit $1 for update skip locked)
        returning ${columns}`,
      [limit, leaseSeconds, this.lead()],
    );
  }

  /** Puts rows back with exponential backoff (2^attempts seconds, at most `maxDelaySeconds`) and the error seen. */
  protected async retryLater(ids: string[], attempts: number, error: unknown, maxDelaySeconds = 600): Promise<void> {
    const { db, table } = this.outbox;
    const delaySeconds = Math.min(maxDelaySeconds, 2 ** Math.min(attempts, 20));
    const message = String(error instanceof Error ? error.message : error).slice(0, 500);
    await db
      .query(
        `update ${table} set next_attempt_at = now() + make_interval(secs => $2::float8 + $4::float8), last_error = $3
          where id = any($1::bigint[])`,
        [ids, delaySeconds, message, this.lead()],
      )
      .catch(() => {}); // the lease expires anyway, and the row is retried then
  }

  /** Seconds the injected clock runs ahead of real time (0 with the system clock). */
  private lead(): number {
    return (this.outbox.clock() - Date.now()) / 1000;
  }

  start(): void {
    this.timer = setInterval(() => void this.drain(), this.outbox.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Processes what is due now (joining a run in progress); resolves with what that run handled. */
  drain(): Promise<number> {
    this.running ??= this.drainDue().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Rows waiting, due or not. */
  async pending(): Promise<number> {
    const [row] = await this.outbox.db.query<{ n: number }>(`select count(*)::int as n from ${this.outbox.table}`);
    return row?.n ?? 0;
  }

  protected abstract drainDue(): Promise<number>;
}
