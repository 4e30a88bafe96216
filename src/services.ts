import { Accounts, UserData } from "./app";
import { type Billing, createBilling } from "./billing";
import { ResponseCache } from "./cache/response-cache";
import { ChatPipeline } from "./chat/pipeline";
import { LocalTargets, ProxyTargets, type Targets } from "./chat/targets";
import { type Clock, systemClock } from "./clock";
import type { Config } from "./config";
import type { Database } from "./db";
import { Guard } from "./guard";
import { Authenticator, JwtVerifier, supabaseAuth, UserChanges } from "./identity";
import { IdleCollector } from "./idle-collector";
import { type CounterStore, InProcessCounters, RateLimiter, RedisCounters } from "./limits";
import { VllmPool } from "./local/pool";
import type { Logger } from "./log";
import { createMemory, type MemoryService } from "./memory";
import { createMetrics, type Metrics } from "./metrics";
import { ProviderKeys } from "./provider-keys";
import { UsageRecorder } from "./usage";
import { openVault, type Vault, type VaultKeys } from "./vault";

/** The application's long-lived services, built once from config (by main.ts, the CLI and component tests). */
export interface Services {
  vault: Vault;
  authenticator: Authenticator;
  providerKeys: ProviderKeys;
  usage: UsageRecorder;
  targets: Targets;
  limiter: RateLimiter;
  /** Rate-limit counters: Redis when configured, else this process. close() on shutdown. */
  counters: CounterStore;
  chat: ChatPipeline;
  metrics: Metrics;
  /** Counts requests begun and in flight; start() (the server process) collects the heap once they stay stopped. */
  idle: IdleCollector;
  /** Recall, write-back outbox and the memory API. start() opens the store; stop() on shutdown. */
  memory: MemoryService;
  /** Local mode only: the vLLM servers (start() runs the first health check). */
  pool?: VllmPool;
  /** Forgets a changed user's cached lookups on every replica (tier, keys, erasure). close() on shutdown. */
  userChanges: UserChanges;
  /** Polar: checkout/portal, webhooks, the usage-event outbox (outbox.start()/stop()); parts absent when off. */
  billing: Billing;
  /** The account flows (users, API keys, settings, balance) that routes and the CLI call. */
  clock: Clock;
  accounts: Accounts;
  /** Provider keys and erasure. */
  userData: UserData;
}

export interface ServiceOptions {
  /** The vault's master keys, read from the environment apart from `config` (see vaultKeysFrom). */
  vaultKeys: VaultKeys;
  /** Rate-limit windows, outbox retries, the usage report's today; default: the system clock. */
  clock?: Clock;
}

export function createServices(
  config: Config,
  db: Database,
  logger: Logger,
  { vaultKeys, clock = systemClock }: ServiceOptions,
): Services {
  const vault = openVault({ ...vaultKeys, embedded: !config.database.url, dataDir: config.dataDir }, logger);
  const { url, anonKey, jwtSecret } = config.supabase;
  // supabase-js's auth client: `getUser` when SUPABASE_AUTH_VERIFY=remote.
  const remoteAuth = url && anonKey ? supabaseAuth(url, anonKey) : undefined;
  const jwt = new JwtVerifier({ supabaseUrl: url, jwtSecret, verify: config.auth.supabaseVerify }, remoteAuth);
  const authenticator = new Authenticator({ db, tiers: config.tiers, jwt, logger, cacheTtlMs: config.auth.cacheTtlMs });
  const providerKeys = new ProviderKeys(db, vault, new Set(config.providers.keys()), config.auth.cacheTtlMs);
  let memory: MemoryService | undefined;
  let billing: Billing | undefined;
  // The journal sits in DATA_DIR itself (where earlier versions kept usage-spool.ndjson, replayed once from there).
  const usage: UsageRecorder = new UsageRecorder({
    db,
    logger,
    journalDir: config.dataDir,
    billUsage: config.polar.apiKey !== undefined,
    onDeadLetter: () => metrics.usageDeadLetters.inc(),
  });
  const metrics = createMetrics({
    usagePending: () => usage.pending,
    memoryPending: () => memory?.outbox.pending() ?? Promise.resolve(0),
    billingPending: () => billing?.outbox?.pending() ?? Promise.resolve(0),
  });
  memory = createMemory(config, db, logger, metrics, clock);
  usage.start();
  const pool =
    config.mode === "local"
      ? new VllmPool({
          urls: config.local.vllmUrls,
          apiKey: config.local.apiKey,
          strategy: config.local.strategy,
          intervalMs: config.local.healthCheckIntervalMs,
          timeoutMs: config.local.healthCheckTimeoutMs,
          failureThreshold: config.local.failureThreshold,
          logger,
        })
      : undefined;
  const targets: Targets = pool
    ? new LocalTargets(pool, config.modelName, config.local.maxRetryAttempts)
    : new ProxyTargets(config.providers, config.models, providerKeys);
  const counters: CounterStore = config.redis.url
    ? new RedisCounters(config.redis.url, (error) => logger.debug("redis error", { error }))
    : new InProcessCounters();
  const limiter = new RateLimiter({
    store: counters,
    failurePolicy: config.rateLimitFailurePolicy,
    tiers: config.tiers,
    defaults: config.rateLimitDefaults,
    logger,
    onReject: (limit) => metrics.rateLimitRejections.inc({ limit }),
    onStoreError: (operation) => metrics.limiterErrors.inc({ operation }),
    now: clock,
  });
  const cache = new ResponseCache({ ...config.cache, sameWords: config.embedding.provider === "builtin" });
  const guard = new Guard(config.guard);
  const chat = new ChatPipeline({ config, targets, limiter, usage, metrics, memory, cache, guard });
  const userChanges = new UserChanges(counters instanceof RedisCounters ? counters.redis : undefined, logger);
  userChanges.onChange((userId) => authenticator.forgetUser(userId));
  // Erasure and memory deletion announce the user: cached answers may hold what was deleted.
  userChanges.onChange((userId) => cache.clearUser(userId));
  memory.onForget((userId) => userChanges.announce(userId));
  userChanges.onChange((userId) => providerKeys.forgetUser(userId));
  billing = createBilling(config, db, logger, (userId) => userChanges.announce(userId), {
    onSent: (events) => metrics.billingEventsSent.inc(events),
    clock,
  });
  const accounts = new Accounts({ db, tiers: config.tiers, userChanges, logger });
  const userData = new UserData({ db, userChanges, providerKeys, memory, logger });
  return {
    clock,
    accounts,
    userData,
    vault,
    authenticator,
    providerKeys,
    usage,
    targets,
    limiter,
    counters,
    chat,
    pool,
    metrics,
    idle: new IdleCollector(),
    memory,
    userChanges,
    billing,
  };
}

/** Starts the background parts: vLLM health checks, the memory and billing outboxes, the Redis connection. */
export async function startServices(services: Services): Promise<void> {
  await services.pool?.start();
  await services.memory.start();
  services.billing.outbox?.start();
  await services.counters.ready(3_000);
}

/** After the HTTP server has drained: flushes usage (which queues memory and billing rows), stops the workers. */
export async function stopServices(services: Services): Promise<void> {
  // Streams cut by the drain deadline record their usage as they unwind: wait for them before the final flush.
  await services.chat.settled(5_000);
  services.pool?.stop();
  await services.usage.close();
  await services.memory.stop();
  await services.billing.outbox?.stop();
  services.userChanges.close();
  services.idle.stop();
  await services.counters.close();
}
