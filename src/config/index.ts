import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { type Env, envSchema, SECRET_VARIABLES } from "./env";
import { loadProviders, type ModelPricing, type ProviderSettings } from "./providers";
import { loadTiers, overrideTierLimits, type Tiers } from "./tiers";

export { baseUrlVariable, type ModelPricing, type ProviderSettings } from "./providers";
export type { Tier, Tiers } from "./tiers";

/** The configuration: what the environment says (`settingsOf`, below) and the data files in CONFIG_DIR. */
export type Config = Settings & {
  tiers: Tiers;
  providers: ReadonlyMap<string, ProviderSettings>;
  /** Known models by id: serving provider and prices. */
  models: ReadonlyMap<string, ModelPricing>;
};

export type Settings = ReturnType<typeof settingsOf>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

export interface LoadConfigOptions {
  /** Folder with tiers.json and the other non-secret data files. */
  configDir?: string;
  /**
   * The server reads this configuration: in production it must not keep memory or rate limits per process (the
   * CLI, which keeps neither, runs a migration or a backup without Qdrant or Redis configured).
   */
  server?: boolean;
}

const PROJECT_ROOT = resolve(__dirname, "..", "..");

/**
 * Memory and rate limits kept per process are right for one process and wrong for several replicas (each would
 * keep its own memories and its own counters, silently). A chosen store must be configured; in production the
 * per-process ones must be chosen explicitly, so a blank QDRANT_URL or REDIS_URL fails loudly instead.
 */
function perProcessStateProblems(e: Env, server: boolean): string[] {
  const problems: string[] = [];
  const qdrant = Boolean(e.QDRANT_URL ?? e.QDRANT_CLOUD_URL);
  const redis = Boolean(e.REDIS_URL ?? e.REDIS_HOST);
  if (e.MEMORY_STORE === "qdrant" && !qdrant) problems.push("MEMORY_STORE: qdrant needs QDRANT_URL");
  if (e.MEMORY_STORE === "embedded" && qdrant) problems.push("MEMORY_STORE: embedded contradicts QDRANT_URL");
  if (e.RATE_LIMIT_STORE === "redis" && !redis) problems.push("RATE_LIMIT_STORE: redis needs REDIS_URL");
  if (e.RATE_LIMIT_STORE === "memory" && redis) problems.push("RATE_LIMIT_STORE: memory contradicts REDIS_URL");
  if (e.NODE_ENV !== "production" || !server) return problems;
  if (!qdrant && e.MEMORY_STORE !== "embedded") {
    problems.push(
      "QDRANT_URL: NODE_ENV=production without Qdrant would keep memory inside each process (replicas would not " +
        "share it). Set QDRANT_URL, or MEMORY_STORE=embedded for a single-process deployment.",
    );
  }
  if (!redis && e.RATE_LIMIT_STORE !== "memory") {
    problems.push(
      "REDIS_URL: NODE_ENV=production without Redis would count rate limits per process (each replica would allow " +
        "the full limit). Set REDIS_URL, or RATE_LIMIT_STORE=memory for a single-process deployment.",
    );
  }
  return problems;
}

/** The one reader of the environment. Throws ConfigError listing every problem, never a secret's value. */
export function loadConfig(env: NodeJS.ProcessEnv, options: LoadConfigOptions = {}): Config {
  const problems: string[] = [];
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0] ?? "(environment)");
      // zod messages describe the expectation, never the received value; secrets stay out either way.
      problems.push(`${name}: ${SECRET_VARIABLES.has(name) ? scrubbed(issue.message) : issue.message}`);
    }
  }
  const configDir = options.configDir ?? (env.CONFIG_DIR || join(PROJECT_ROOT, "config"));
  const { tiers, problems: tierProblems } = loadTiers(configDir);
  problems.push(...tierProblems);
  if (parsed.success && tiers) problems.push(...overrideTierLimits(tiers, parsed.data));
  const { providers, models, problems: providerProblems } = loadProviders(configDir, env);
  problems.push(...providerProblems);
  if (
    parsed.success &&
    parsed.data.SUPABASE_AUTH_VERIFY === "remote" &&
    !(parsed.data.SUPABASE_URL && parsed.data.SUPABASE_KEY)
  ) {
    problems.push("SUPABASE_AUTH_VERIFY: remote needs SUPABASE_URL and SUPABASE_KEY");
  }
  if (parsed.success && parsed.data.EMBEDDING_PROVIDER === "openai" && !parsed.data.EMBEDDING_API_KEY) {
    problems.push("EMBEDDING_PROVIDER: openai needs EMBEDDING_API_KEY");
  }
  if (parsed.success && parsed.data.EMBEDDING_PROVIDER === "vllm" && !parsed.data.EMBEDDING_BASE_URL) {
    problems.push("EMBEDDING_PROVIDER: vllm needs EMBEDDING_BASE_URL (the embedding server's /v1 base)");
  }
  if (parsed.success) problems.push(...perProcessStateProblems(parsed.data, options.server ?? false));
  if (!parsed.success || !tiers || !providers || !models || problems.length > 0) throw new ConfigError(problems);

  return { ...settingsOf(parsed.data), tiers, providers, models };
}

/** The environment's variables as the settings the code reads: the one mapping from names to structure. */
function settingsOf(e: Env) {
  const redisUrl =
    e.REDIS_URL ?? (e.REDIS_HOST ? redisUrlFromParts(e.REDIS_HOST, e.REDIS_PORT, e.REDIS_PASSWORD) : undefined);
  const environment = e.NODE_ENV;
  return {
    appName: e.APP_NAME,
    version: e.VERSION ?? packageVersion(),
    environment,
    debug: e.DEBUG,
    mode: e.MODE,
    http: {
      host: e.API_HOST,
      port: e.API_PORT ?? e.PORT ?? 8000,
      apiPrefix: e.API_PREFIX,
      maxBodyBytes: e.MAX_REQUEST_BODY_SIZE,
      /** Express's "trust proxy" (client addresses from X-Forwarded-For through that many hops or those proxies). */
      trustProxy:
        e.TRUST_PROXY === undefined ? undefined : /^\d+$/.test(e.TRUST_PROXY) ? Number(e.TRUST_PROXY) : e.TRUST_PROXY,
      requestTimeoutMs: e.REQUEST_TIMEOUT_SECONDS * 1000,
      shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_SECONDS * 1000,
    },
    log: {
      level: e.LOG_LEVEL ?? (e.DEBUG ? "debug" : "info"),
      format: e.LOG_FORMAT ?? (environment === "production" ? "json" : "pretty"),
    },
    /** Embedded state (PGlite, generated keys) lives here. */
    dataDir: resolve(e.DATA_DIR),
    /** No url: the embedded PGlite database. */
    database: { url: e.DATABASE_URL, poolSize: e.DATABASE_POOL_SIZE },
    supabase: {
      url: e.SUPABASE_URL,
      anonKey: e.SUPABASE_KEY,
      jwtSecret: e.SUPABASE_JWT_SECRET,
      serviceRoleKey: e.SUPABASE_SERVICE_ROLE_KEY,
    },
    qdrant: { url: e.QDRANT_URL ?? e.QDRANT_CLOUD_URL, apiKey: e.QDRANT_API_KEY, collection: e.QDRANT_COLLECTION },
    memory: {
      defaultMode: e.MEMORY_DEFAULT_MODE,
      defaultScope: e.MEMORY_DEFAULT_SCOPE,
      /** The most tokens of memory a request gets (a tier's max_memory_tokens may lower it, a header too). */
      tokenBudget: e.MEMORY_TOKEN_BUDGET,
      /** Recall injects nothing unless a candidate's relevance (query coverage + cosine) reaches this. */
      minRelevance: e.MEMORY_MIN_RELEVANCE,
      recallTimeoutMs: e.MEMORY_RECALL_TIMEOUT_MS,
      chunkTokens: e.MEMORY_CHUNK_TOKENS,
    },
    /** The guard's key-sharing rule (its mode is each tier's `guard`). */
    guard: {
      keySharingAddresses: e.GUARD_KEY_SHARING_ADDRESSES,
      keySharingWindowMs: e.GUARD_KEY_SHARING_WINDOW_SECONDS * 1000,
    },
    /** The per-user response cache: off unless a request (x-perpetual-cache) or this default asks for it. */
    cache: {
      defaultMode: e.RESPONSE_CACHE,
      ttlMs: e.RESPONSE_CACHE_TTL_SECONDS * 1000,
      /** Semantic hits need at least this cosine similarity between the last user turns. */
      similarity: e.RESPONSE_CACHE_SIMILARITY,
      maxBytes: e.RESPONSE_CACHE_MAX_MB * 1024 * 1024,
    },
    /** Dense embeddings for memory: the built-in word vectors, OpenAI, or a vLLM embedding server. */
    embedding: {
      provider: e.EMBEDDING_PROVIDER,
      model: e.EMBEDDING_MODEL,
      dimensions: e.EMBEDDING_DIMENSIONS,
      baseUrl: e.EMBEDDING_BASE_URL,
      apiKey: e.EMBEDDING_API_KEY,
    },
    /** No url: in-process limits. */
    redis: { url: redisUrl },
    // The vault's master keys are not here: only the vault reads them (vaultKeysFrom), so no layer handed this
    // configuration can leak them.
    /** Billing with Polar: off unless apiKey is set; webhooks off unless webhookSecret is set. */
    polar: {
      apiKey: e.POLAR_API_KEY,
      organizationId: e.POLAR_ORGANIZATION_ID,
      /** "production", "sandbox" or a base URL (a Polar-compatible test server). */
      server: e.POLAR_SERVER,
      webhookSecret: e.POLAR_WEBHOOK_SECRET,
      /** Name of the usage event sent for each successful completion. */
      eventName: e.POLAR_EVENT_NAME,
      /** Where checkout sends the customer when paid, and where the portal's back link goes. */
      successUrl: e.POLAR_SUCCESS_URL,
    },
    rateLimitDefaults: { perMinute: e.RATE_LIMIT_PER_MINUTE, perDay: e.RATE_LIMIT_PER_DAY },
    /** While Redis is unreachable: open (per-process counters) or closed (503). */
    rateLimitFailurePolicy: e.RATE_LIMIT_FAILURE_POLICY,
    modelName: e.MODEL_NAME,
    local: {
      vllmUrls: (e.VLLM_URLS ?? "")
        .split(",")
        .map((u) => u.trim().replace(/\/+$/, ""))
        .filter(Boolean),
      apiKey: e.VLLM_API_KEY,
      maxRetryAttempts: e.MAX_RETRY_ATTEMPTS,
      strategy: e.LOAD_BALANCING,
      healthCheckIntervalMs: e.HEALTH_CHECK_INTERVAL_SECONDS * 1000,
      healthCheckTimeoutMs: e.HEALTH_CHECK_TIMEOUT_SECONDS * 1000,
      failureThreshold: e.HEALTH_CHECK_FAILURE_THRESHOLD,
    },
    adminApiKey: e.ADMIN_API_KEY,
    /** When set, /metrics and /prometheus require it as a bearer token. */
    metricsToken: e.METRICS_TOKEN,
    /** OpenTelemetry tracing: off unless an OTLP endpoint is set. */
    telemetry: {
      endpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT?.replace(/\/+$/, ""),
      headers: Object.fromEntries(
        (e.OTEL_EXPORTER_OTLP_HEADERS ?? "")
          .split(",")
          .filter((pair) => pair.includes("="))
          .map((pair) => [
            pair.slice(0, pair.indexOf("=")).trim(),
            decodeURIComponent(pair.slice(pair.indexOf("=") + 1).trim()),
          ]),
      ),
      serviceName: e.OTEL_SERVICE_NAME,
    },
    /** cacheTtlMs: how long a credential lookup is reused in-process (the longest a revocation takes elsewhere). */
    auth: { cacheTtlMs: e.AUTH_CACHE_TTL_SECONDS * 1000, supabaseVerify: e.SUPABASE_AUTH_VERIFY },
  };
}

function redisUrlFromParts(host: string, port: number, password: string | undefined): string {
  const url = new URL(`redis://${host}:${port}`);
  if (password) url.password = password;
  return url.toString();
}

function scrubbed(message: string): string {
  return message.replace(/"[^"]*"/g, '"…"');
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, "package.json"), "utf8")) as { version?: string };
  return pkg.version ?? "0.0.0";
}
