import { appendFileSync, existsSync, readFileSync, renameSync, rmSync } from "node:fs";
import type { Database } from "../db";
import type { Logger } from "../log";

/** One row of usage_logs, as the pipeline reports it. */
export interface UsageRecord {
  requestId: string;
  userId: string;
  apiKeyId: string | null;
  endpoint: string;
  provider: string | null;
  model: string;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  totalTokens: number;
  costUsd: number;
  costUnknown: boolean;
  usageEstimated: boolean;
  latencyMs: number;
  timeToFirstTokenMs: number | null;
  statusCode: number;
  errorCode: string | null;
  stream: boolean;
  conversationId: string | null;
  retrievalCalls: number;
  retrievalLatencyMs: number;
  createdAt: string;
  /** The exchange to write into memory (new user turns and the reply), queued in memory_outbox with the row. */
  memory?: { role: "user" | "assistant"; content: string }[];
}

export interface UsageRecorderOptions {
  db: Database;
  logger: Logger;
  /** Rows that do not fit in memory while the database is away wait here (NDJSON), and are replayed later. */
  spoolPath: string;
  /** Queue successful requests in billing_outbox for Polar (billing configured). */
  billUsage?: boolean;
  flushIntervalMs?: number;
  batchSize?: number;
  maxBufferedRows?: number;
}

// One statement: insert the batch (a request id is never stored twice), skip rows whose user was deleted in the
// meantime, queue the exchanges for memory write-back and (when $2, billing is on) successful requests for Polar,
// and add the inserted rows to the users' running totals, month spend and prepaid balance.
const INSERT_BATCH = `
with input as (
  select * from jsonb_to_recordset($1::jsonb) as x(
    "requestId" text, "userId" uuid, "apiKeyId" uuid, endpoint text, provider text, model text,
    "promptTokens" int, "completionTokens" int, "cachedTokens" int, "totalTokens" int, "costUsd" numeric,
    "costUnknown" boolean, "usageEstimated" boolean, "latencyMs" int, "timeToFirstTokenMs" int, "statusCode" int,
    "errorCode" text, stream boolean, "conversationId" text, "retrievalCalls" int, "retrievalLatencyMs" int,
    "createdAt" timestamptz, memory jsonb)
), known as (
  select * from input i where exists (select 1 from users u where u.id = i."userId")
), memory as (
  insert into memory_outbox (request_id, user_id, conversation_id, model, messages, created_at)
  select k."requestId", k."userId", k."conversationId", k.model, k.memory, k."createdAt"
  from known k where k.memory is not null
  on conflict (request_id) do nothing
), inserted as (
  insert into usage_logs (request_id, user_id, api_key_id, endpoint, provider, model, prompt_tokens, completion_tokens,
    cached_tokens, total_tokens, cost_usd, cost_unknown, usage_estimated, latency_ms, time_to_first_token_ms,
    status_code, error_code, stream, conversation_id, retrieval_calls, retrieval_latency_ms, created_at)
  select i."requestId", i."userId", (select k.id from api_keys k where k.id = i."apiKeyId"), i.endpoint, i.provider,
    i.model, i."promptTokens", i."completionTokens", i."cachedTokens", i."totalTokens", i."costUsd", i."costUnknown",
    i."usageEstimated", i."latencyMs", i."timeToFirstTokenMs", i."statusCode", i."errorCode", i.stream,
    i."conversationId", i."retrievalCalls", i."retrievalLatencyMs", i."createdAt"
  from known i
  on conflict (request_id) do nothing
  returning request_id, user_id, provider, model, prompt_tokens, cached_tokens, completion_tokens, total_tokens,
    cost_usd, status_code, created_at
), billing as (
  insert into billing_outbox (request_id, user_id, provider, model, prompt_tokens, cached_tokens, completion_tokens,
    cost_usd, created_at)
  select request_id, user_id, provider, model, prompt_tokens, cached_tokens, completion_tokens, cost_usd, created_at
  from inserted where $2::boolean and status_code = 200 and provider is distinct from 'mock'
  on conflict (request_id) do nothing
), totals as (
  select user_id, count(*) as requests, sum(total_tokens) as tokens, sum(cost_usd) as cost
  from inserted group by user_id
), month as (
  select date_trunc('month', now() at time zone 'utc')::date as first_day
)
update users u set total_requests = u.total_requests + t.requests, total_tokens = u.total_tokens + t.tokens,
  current_balance_usd = u.current_balance_usd - t.cost,
  month_spend_usd = case when u.spend_month = m.first_day then u.month_spend_usd + t.cost else t.cost end,
  spend_month = m.first_day
from totals t, month m where u.id = t.user_id`;

/**
 * Writes usage rows in batches, off the request path, without losing any: while the database is unreachable rows
 * wait in memory (bounded), then in a spool file; both are written when it returns. `close()` flushes on SIGTERM.
 */
export class UsageRecorder {
  private queue: UsageRecord[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private failures = 0;
  private nextAttemptAt = 0;
  private readonly flushIntervalMs: number;
  private readonly batchSize: number;
  private readonly maxBufferedRows: number;

  constructor(private readonly options: UsageRecorderOptions) {
    this.flushIntervalMs = options.flushIntervalMs ?? 200;
    this.batchSize = options.batchSize ?? 500;
    this.maxBufferedRows = options.maxBufferedRows ?? 20_000;
  }

  start(): void {
    this.recoverSpool();
    this.timer = setInterval(() => void this.flush(), this.flushIntervalMs);
    this.timer.unref();
  }

  record(row: UsageRecord): void {
    this.queue.push(row);
    if (this.queue.length > this.maxBufferedRows)
      this.spill(this.queue.splice(0, this.queue.length - this.maxBufferedRows));
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Writes everything queued; resolves when done or when the database refused (rows stay queued). */
  flush(): Promise<void> {
    this.flushing ??= this.drain().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  /** Final flush within the deadline; what could not be written goes to the spool file for the next start. */
  async close(deadlineMs = 5_000): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.nextAttemptAt = 0;
    const deadline = Date.now() + deadlineMs;
    while (this.queue.length > 0 && Date.now() < deadline) {
      await this.flush();
      if (this.failures > 0) break;
    }
    await this.flushing;
    if (this.queue.length > 0) this.spill(this.queue.splice(0));
  }

  private async drain(): Promise<void> {
    if (Date.now() < this.nextAttemptAt) return;
    while (this.queue.length > 0) {
      const batch = this.queue.slice(0, this.batchSize);
      try {
        await this.options.db.query(INSERT_BATCH, [JSON.stringify(batch), this.options.billUsage === true]);
      } catch (error) {
        this.failures++;
        // Back off up to 5 s between attempts while the database is away.
        this.nextAttemptAt = Date.now() + Math.min(5_000, 100 * 2 ** Math.min(this.failures, 6));
        if (this.failures === 1 || this.failures % 50 === 0) {
          this.options.logger.warn("usage rows waiting for the database", { pending: this.queue.length, error });
        }
        return;
      }
      this.queue.splice(0, batch.length);
      if (this.failures > 0) {
        this.options.logger.info("usage writes resumed", { after_failures: this.failures });
        this.failures = 0;
        this.recoverSpool();
      }
    }
  }

  private spill(rows: UsageRecord[]): void {
    if (rows.length === 0) return;
    appendFileSync(this.options.spoolPath, `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`, { mode: 0o600 });
    this.options.logger.warn("usage rows spooled to disk until the database returns", { rows: rows.length });
  }

  /** Moves spooled rows back into the queue; request ids make a replay of already-written rows harmless. */
  private recoverSpool(): void {
    const path = this.options.spoolPath;
    const replaying = `${path}.replaying`;
    // A `.replaying` file left behind means a crash mid-replay: its rows are read again (harmless, see above).
    if (existsSync(path)) {
      if (existsSync(replaying)) appendFileSync(replaying, readFileSync(path, "utf8"));
      else renameSync(path, replaying);
      rmSync(path, { force: true });
    }
    if (!existsSync(replaying)) return;
    const rows = readFileSync(replaying, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as UsageRecord);
    this.queue.unshift(...rows);
    rmSync(replaying);
    this.options.logger.info("replaying spooled usage rows", { rows: rows.length });
  }
}
