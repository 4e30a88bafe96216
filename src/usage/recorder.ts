import { z } from "zod";
import { type Database, isDataError, storableJson } from "../db";
import type { Logger } from "../log";
import { type JournalEntry, UsageJournal } from "./journal";

const count = z.number().int().min(0);
/** One row of usage_logs, as the pipeline reports it; also what the journal reads back after a crash. */
export const usageRecordSchema = z.object({
  /** The server's own id: the idempotency key of the row and of its memory and billing outbox rows. */
  requestId: z.string().min(1),
  /** The caller's x-request-id, kept for tracing only. */
  clientRequestId: z.string().nullable().default(null),
  userId: z.string().min(1),
  apiKeyId: z.string().nullable(),
  endpoint: z.string(),
  provider: z.string().nullable(),
  model: z.string(),
  promptTokens: count,
  completionTokens: count,
  cachedTokens: count,
  totalTokens: count,
  costUsd: z.number().min(0),
  costUnknown: z.boolean(),
  usageEstimated: z.boolean(),
  latencyMs: count,
  timeToFirstTokenMs: count.nullable(),
  statusCode: z.number().int(),
  errorCode: z.string().nullable(),
  stream: z.boolean(),
  conversationId: z.string().nullable(),
  retrievalCalls: count,
  retrievalLatencyMs: count,
  createdAt: z.string(),
  /** Answered from the response cache (exact or semantic match): no provider call, cost 0. */
  cacheHit: z.enum(["exact", "semantic"]).nullable().default(null),
  /** What the cached answer's original call cost: what the hit saved. */
  savedCostUsd: z.number().min(0).default(0),
  /** The guard's rules this request was flagged (or blocked) for. */
  guardFlags: z.array(z.string()).nullable().default(null),
  /** The exchange to write into memory (new user turns and the reply), queued in memory_outbox with the row. */
  memory: z.array(z.object({ role: z.enum(["user", "assistant"]), content: z.string() })).optional(),
});
/** A usage record as written (fields with a default may be left out: rows journaled before they existed lack them). */
export type UsageRecord = z.input<typeof usageRecordSchema>;

export interface UsageRecorderOptions {
  db: Database;
  logger: Logger;
  /** The usage journal's directory (see journal.ts): records wait there until PostgreSQL has them. */
  journalDir: string;
  /** A record PostgreSQL refused on its own was set aside in usage_dead_letters. */
  onDeadLetter?: () => void;
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
    "requestId" text, "clientRequestId" text, "userId" uuid, "apiKeyId" uuid, endpoint text, provider text, model text,
    "promptTokens" int, "completionTokens" int, "cachedTokens" int, "totalTokens" int, "costUsd" numeric,
    "costUnknown" boolean, "usageEstimated" boolean, "latencyMs" int, "timeToFirstTokenMs" int, "statusCode" int,
    "errorCode" text, stream boolean, "conversationId" text, "retrievalCalls" int, "retrievalLatencyMs" int,
    "createdAt" timestamptz, memory jsonb, "cacheHit" text, "savedCostUsd" numeric, "guardFlags" jsonb)
), known as (
  select * from input i where exists (select 1 from users u where u.id = i."userId")
), memory as (
  insert into memory_outbox (request_id, user_id, conversation_id, model, messages, created_at)
  select k."requestId", k."userId", k."conversationId", k.model, k.memory, k."createdAt"
  from known k where k.memory is not null
  on conflict (request_id) do nothing
), inserted as (
  insert into usage_logs (request_id, client_request_id, user_id, api_key_id, endpoint, provider, model, prompt_tokens, completion_tokens,
    cached_tokens, total_tokens, cost_usd, cost_unknown, usage_estimated, latency_ms, time_to_first_token_ms,
    status_code, error_code, stream, conversation_id, retrieval_calls, retrieval_latency_ms, created_at, cache_hit,
    saved_cost_usd, guard_flags)
  select i."requestId", i."clientRequestId", i."userId", (select k.id from api_keys k where k.id = i."apiKeyId"), i.endpoint, i.provider,
    i.model, i."promptTokens", i."completionTokens", i."cachedTokens", i."totalTokens", i."costUsd", i."costUnknown",
    i."usageEstimated", i."latencyMs", i."timeToFirstTokenMs", i."statusCode", i."errorCode", i.stream,
    i."conversationId", i."retrievalCalls", i."retrievalLatencyMs", i."createdAt", i."cacheHit",
    coalesce(i."savedCostUsd", 0),
    (select string_agg(f, ',') from jsonb_array_elements_text(nullif(i."guardFlags", 'null'::jsonb)) f)
  from known i
  on conflict (request_id) do nothing
  returning request_id, user_id, provider, model, prompt_tokens, cached_tokens, completion_tokens, total_tokens,
    cost_usd, status_code, created_at, cache_hit
), billing as (
  insert into billing_outbox (request_id, user_id, provider, model, prompt_tokens, cached_tokens, completion_tokens,
    cost_usd, created_at)
  select request_id, user_id, provider, model, prompt_tokens, cached_tokens, completion_tokens, cost_usd, created_at
  -- Not billed: mock_response answers (the mock provider, providers/mock.ts) and response-cache hits.
  from inserted where $2::boolean and status_code = 200 and provider is distinct from 'mock' and cache_hit is null
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

const INSERT_DEAD_LETTER = `
insert into usage_dead_letters (request_id, user_id, reason, record)
values ($1, (select id from users where id::text = $2), $3, $4)`;

/**
 * Writes usage rows in batches, off the request path, without losing any: `record` journals the row on local disk
 * (resolving once it is there) and queues it; the batch writer inserts the queue, confirms what landed in the
 * journal, and backs off while the database is away (the queue is bounded in memory; the journal is not). A batch
 * refused for its data is split until the refused record is found; that record goes to usage_dead_letters and the
 * rest land. `close()` flushes on SIGTERM; what is still unwritten is replayed from the journal at the next start.
 */
export class UsageRecorder {
  private queue: JournalEntry<UsageRecord>[] = [];
  private readonly journal: UsageJournal<UsageRecord>;
  private warnedBound = false;
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
    this.journal = new UsageJournal({
      dir: options.journalDir,
      logger: options.logger,
      // Lines of older versions may hold text PostgreSQL cannot store: re-serialized storable.
      parse: (line) => {
        const record = usageRecordSchema.parse(JSON.parse(line));
        return { record, line: storableJson(record) };
      },
    });
  }

  /** Opens the journal and queues what an earlier process left unwritten. */
  start(): void {
    const left = this.journal.open();
    if (left.length > 0) {
      this.options.logger.info("replaying usage records from the journal", { rows: left.length });
      this.queue.unshift(...left);
      this.bound();
    }
    this.timer = setInterval(() => void this.flush(), this.flushIntervalMs);
    this.timer.unref();
  }

  /** Queues the row; resolves once it is in the journal (answer the request only then). */
  record(row: UsageRecord): Promise<void> {
    const entry: JournalEntry<UsageRecord> = { record: row, line: storableJson(row) };
    this.queue.push(entry);
    this.bound();
    return this.journal.append(entry);
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

  /** Final flush within the deadline; what could not be written stays in the journal for the next start. */
  async close(deadlineMs = 5_000): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.nextAttemptAt = 0;
    const deadline = Date.now() + deadlineMs;
    while (this.queue.length > 0 && Date.now() < deadline) {
      await this.flush();
      if (this.failures > 0) break;
    }
    await this.flushing;
    await this.journal.close();
    if (this.queue.length > 0)
      this.options.logger.warn("usage rows left in the journal for the next start", { rows: this.queue.length });
  }

  /** Beyond the in-memory bound the oldest entries leave memory; their journal segments are read again later. */
  private bound(): void {
    const over = this.queue.length - this.maxBufferedRows;
    if (over <= 0) return;
    for (const entry of this.queue.splice(0, over)) this.journal.evict(entry);
    if (!this.warnedBound) this.options.logger.warn("usage rows beyond the memory bound wait in the journal only");
    this.warnedBound = true;
  }

  private async drain(): Promise<void> {
    if (Date.now() < this.nextAttemptAt) return;
    while (this.queue.length > 0) {
      const batch = this.queue.slice(0, this.batchSize);
      try {
        await this.insert(batch);
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
      for (const entry of batch) this.journal.confirm(entry);
      if (this.failures > 0) {
        this.options.logger.info("usage writes resumed", { after_failures: this.failures });
        this.failures = 0;
      }
      if (this.queue.length === 0 && this.journal.hasEvicted) {
        this.warnedBound = false;
        this.queue.push(...(await this.journal.reloadEvicted()));
      }
    }
  }

  /** Inserts the entries; a batch refused for its data is halved until the refused record is set aside alone. */
  private async insert(entries: JournalEntry<UsageRecord>[]): Promise<void> {
    try {
      await this.options.db.query(INSERT_BATCH, [
        `[${entries.map((e) => e.line).join(",")}]`,
        this.options.billUsage === true,
      ]);
    } catch (error) {
      if (!isDataError(error)) throw error;
      if (entries.length === 1) return this.deadLetter(entries[0]!, error);
      const half = Math.ceil(entries.length / 2);
      await this.insert(entries.slice(0, half));
      await this.insert(entries.slice(half));
    }
  }

  private async deadLetter({ record, line }: JournalEntry<UsageRecord>, error: unknown): Promise<void> {
    const { code, message } = error as { code?: string; message?: string };
    const reason = `${code ?? "error"}: ${message ?? String(error)}`.slice(0, 500);
    await this.options.db.query(INSERT_DEAD_LETTER, [record.requestId, record.userId, reason, line]);
    this.options.onDeadLetter?.();
    this.options.logger.error("usage record refused by the database, kept in usage_dead_letters", {
      request_id: record.requestId,
      reason,
    });
  }
}
