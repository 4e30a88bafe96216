import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const MAX_MODEL_LABELS = 100;

/**
 * Prometheus metrics. The seven seed names are kept exactly; labels are bounded (endpoint is the route pattern,
 * model falls back to "other" after 100 distinct values, no user ids: per-user numbers live in usage_logs).
 */
export function createMetrics(options: {
  usagePending: () => number;
  memoryPending?: () => Promise<number>;
  billingPending?: () => Promise<number>;
}) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "perpetual_" });
  const models = new Set<string>();
  const modelLabel = (model: string) => {
    if (models.has(model)) return model;
    if (models.size >= MAX_MODEL_LABELS) return "other";
    models.add(model);
    return model;
  };
  const registers = [registry];

  const metrics = {
    registry,
    modelLabel,
    requestsTotal: new Counter({
      name: "perpetual_requests_total",
      help: "HTTP requests by endpoint and status",
      labelNames: ["endpoint", "status"],
      registers,
    }),
    requestDuration: new Histogram({
      name: "perpetual_request_duration_seconds",
      help: "HTTP request duration until the response finished (whole stream for SSE)",
      labelNames: ["endpoint"],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    tokensTotal: new Counter({
      name: "perpetual_tokens_total",
      help: "Tokens by type (prompt, completion, cached) and model",
      labelNames: ["type", "model"],
      registers,
    }),
    retrievalsTotal: new Counter({ name: "perpetual_retrievals_total", help: "Memory retrievals", registers }),
    retrievalDuration: new Histogram({
      name: "perpetual_retrieval_duration_seconds",
      help: "Memory retrieval duration",
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    errorsTotal: new Counter({
      name: "perpetual_errors_total",
      help: "Error responses by endpoint and error type",
      labelNames: ["endpoint", "type"],
      registers,
    }),
    costTotal: new Counter({
      name: "perpetual_cost_usd_total",
      help: "Provider cost in USD by model",
      labelNames: ["model"],
      registers,
    }),
    upstreamDuration: new Histogram({
      name: "perpetual_upstream_duration_seconds",
      help: "Provider call duration (to the last byte)",
      labelNames: ["provider"],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    timeToFirstToken: new Histogram({
      name: "perpetual_time_to_first_token_seconds",
      help: "Time from request to the first streamed chunk",
      labelNames: ["provider"],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    inFlight: new Gauge({ name: "perpetual_in_flight_requests", help: "Requests being handled", registers }),
    rateLimitRejections: new Counter({
      name: "perpetual_rate_limit_rejections_total",
      help: "Requests refused by a rate limit",
      labelNames: ["limit"],
      registers,
    }),
    usagePending: new Gauge({
      name: "perpetual_usage_outbox_pending",
      help: "Usage rows waiting to be written (the durable usage outbox)",
      registers,
      collect() {
        this.set(options.usagePending());
      },
    }),
    usageDeadLetters: new Counter({
      name: "perpetual_usage_dead_letters_total",
      help: "Usage records PostgreSQL refused on their own, kept in usage_dead_letters instead of usage_logs",
      registers,
    }),
    limiterErrors: new Counter({
      name: "perpetual_rate_limiter_errors_total",
      help: "Rate-limiter store operations that failed (reservations fall back per the failure policy)",
      labelNames: ["operation"],
      registers,
    }),
    guardFlags: new Counter({
      name: "perpetual_guard_flags_total",
      help: "Requests the abuse and prompt-injection guard flagged or blocked, by rule and action (flag, block)",
      labelNames: ["rule", "action"],
      registers,
    }),
    cacheLookups: new Counter({
      name: "perpetual_cache_lookups_total",
      help: "Response cache lookups of requests that opted in, by outcome: exact or semantic (hits), miss",
      labelNames: ["outcome"],
      registers,
    }),
    memoryRecalls: new Counter({
      name: "perpetual_memory_recalls_total",
      help: "Recalls answered, by outcome: ok (memories added), irrelevant (none cleared the relevance gate), empty",
      labelNames: ["outcome"],
      registers,
    }),
    memoryRecallFailures: new Counter({
      name: "perpetual_memory_recall_failures_total",
      help: "Recalls skipped because the vector store or embedder was slow (timeout) or failing (unavailable)",
      labelNames: ["reason"],
      registers,
    }),
    memoryPending: new Gauge({
      name: "perpetual_memory_outbox_pending",
      help: "Exchanges waiting in memory_outbox to be embedded and stored",
      registers,
      async collect() {
        if (options.memoryPending) this.set(await options.memoryPending().catch(() => -1));
      },
    }),
    billingPending: new Gauge({
      name: "perpetual_billing_outbox_pending",
      help: "Usage events waiting in billing_outbox to be sent to Polar (0 when billing is off)",
      registers,
      async collect() {
        this.set(options.billingPending ? await options.billingPending().catch(() => -1) : 0);
      },
    }),
    billingEventsSent: new Counter({
      name: "perpetual_billing_events_sent_total",
      help: "Usage events Polar accepted",
      registers,
    }),
  };
  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;
