import { z } from "zod";

/**
 * The environment variables Perpetual reads. This schema is the only place that knows their names;
 * `loadConfig` turns the parsed result into the camelCase `Config` the rest of the code uses.
 */

/** Variables whose values must never be echoed back, not even in a validation error. */
export const SECRET_VARIABLES = new Set([
  "SUPABASE_KEY",
  "SUPABASE_JWT_SECRET",
  "SUPABASE_SERVICE_ROLE_KEY",
  "QDRANT_API_KEY",
  "REDIS_PASSWORD",
  "REDIS_URL",
  "DATABASE_URL",
  "API_KEY_ENCRYPTION_KEY",
  "API_KEY_ENCRYPTION_KEYS_PREVIOUS",
  "POLAR_API_KEY",
  "POLAR_WEBHOOK_SECRET",
  "ADMIN_API_KEY",
  "VLLM_API_KEY",
  "METRICS_TOKEN",
  "OTEL_EXPORTER_OTLP_HEADERS",
  "EMBEDDING_API_KEY",
]);

const emptyAsUndefined = (value: unknown) => (typeof value === "string" && value.trim() === "" ? undefined : value);

const optionalString = z.preprocess(emptyAsUndefined, z.string().optional());

const booleanFlag = (fallback: boolean) =>
  z.preprocess(
    emptyAsUndefined,
    z
      .enum(["true", "false", "1", "0", "yes", "no", "on", "off"], {
        message: "must be one of true, false, 1, 0, yes, no, on, off",
      })
      .optional()
      .transform((v) => (v === undefined ? fallback : ["true", "1", "yes", "on"].includes(v))),
  );

/** An optional variable read from its text form; `parse` returns undefined when the text is not acceptable. */
const parsedFrom = <T>(fallback: T, parse: (text: string) => T | undefined, message: string) =>
  z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .optional()
      .transform((text, ctx) => {
        if (text === undefined) return fallback;
        const value = parse(text.trim());
        if (value === undefined) {
          ctx.addIssue({ code: "custom", message });
          return z.NEVER;
        }
        return value;
      }),
  );

const integer = (fallback: number, min: number, max: number) =>
  parsedFrom(
    fallback,
    (text) => (/^-?\d+$/.test(text) && Number(text) >= min && Number(text) <= max ? Number(text) : undefined),
    `must be a whole number from ${min} to ${max}`,
  );

/** A whole number, or undefined when unset (for variables whose absence means "use another"). */
const optionalInteger = (min: number, max: number) =>
  parsedFrom<number | undefined>(
    undefined,
    (text) => (/^\d+$/.test(text) && Number(text) >= min && Number(text) <= max ? Number(text) : undefined),
    `must be a whole number from ${min} to ${max}`,
  );

const decimal = (fallback: number, min: number, max: number) =>
  parsedFrom(
    fallback,
    (text) => (/^\d+(\.\d+)?$/.test(text) && Number(text) >= min && Number(text) <= max ? Number(text) : undefined),
    `must be a number from ${min} to ${max}`,
  );

const httpUrl = z.preprocess(
  emptyAsUndefined,
  z
    .string()
    .optional()
    .refine((v) => v === undefined || isUrlWithProtocol(v, ["http:", "https:"]), {
      message: "must be an http:// or https:// URL",
    }),
);

function isUrlWithProtocol(value: string, protocols: string[]): boolean {
  try {
    return protocols.includes(new URL(value).protocol);
  } catch {
    return false;
  }
}

const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

/** "10mb", "512kb" or a plain byte count, from 1kb to 1gb. */
const byteSize = (fallback: number) =>
  parsedFrom(
    fallback,
    (text) => {
      const match = /^(\d+)\s*(b|kb|mb|gb)?$/i.exec(text);
      const bytes = match ? Number(match[1]) * (SIZE_UNITS[(match[2] ?? "b").toLowerCase()] ?? 1) : Number.NaN;
      return bytes >= 1024 && bytes <= 1024 ** 3 ? bytes : undefined;
    },
    'must be a size from 1kb to 1gb, e.g. "10mb" or "1048576"',
  );

export const envSchema = z.object({
  NODE_ENV: z.preprocess(emptyAsUndefined, z.enum(["development", "production", "test"]).default("development")),
  APP_NAME: z.preprocess(emptyAsUndefined, z.string().default("Perpetual")),
  VERSION: optionalString,
  DEBUG: booleanFlag(false),
  MODE: z.preprocess(
    emptyAsUndefined,
    z.enum(["proxy", "local"], { message: 'must be "proxy" or "local"' }).default("proxy"),
  ),
  API_HOST: z.preprocess(emptyAsUndefined, z.string().default("0.0.0.0")),
  /** Unset: PORT (what Railway, Render and Fly set), else 8000. */
  API_PORT: optionalInteger(0, 65535),
  PORT: optionalInteger(0, 65535),
  API_PREFIX: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^\/[A-Za-z0-9._~/-]*[^/]$/, { message: 'must start with "/" and not end with "/", e.g. "/v1"' })
      .default("/v1"),
  ),
  DATA_DIR: z.preprocess(emptyAsUndefined, z.string().default("./data")),
  // Folder of tiers.json, providers.json and models.json; unset: the config/ folder shipped with the code.
  CONFIG_DIR: z.preprocess(emptyAsUndefined, z.string().optional()),
  DATABASE_URL: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .optional()
      .refine((v) => v === undefined || isUrlWithProtocol(v, ["postgres:", "postgresql:"]), {
        message: "must be a postgres:// or postgresql:// connection URL",
      }),
  ),
  DATABASE_POOL_SIZE: integer(10, 1, 200),
  SUPABASE_URL: httpUrl,
  SUPABASE_KEY: optionalString,
  SUPABASE_JWT_SECRET: optionalString,
  SUPABASE_SERVICE_ROLE_KEY: optionalString,
  SUPABASE_AUTH_VERIFY: z.preprocess(
    emptyAsUndefined,
    z.enum(["local", "remote"], { message: 'must be "local" or "remote"' }).default("local"),
  ),
  AUTH_CACHE_TTL_SECONDS: integer(5, 0, 300),
  QDRANT_URL: httpUrl,
  QDRANT_CLOUD_URL: httpUrl,
  QDRANT_API_KEY: optionalString,
  QDRANT_COLLECTION: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,200}$/, { message: "must be letters, digits, _ or - (at most 200)" })
      .default("perpetual_memory"),
  ),
  MEMORY_STORE: z.preprocess(
    emptyAsUndefined,
    z.enum(["embedded", "qdrant"], { message: 'must be "embedded" or "qdrant"' }).optional(),
  ),
  /** Express's "trust proxy": hops (a number) or addresses/subnets (loopback, 10.0.0.0/8, …) whose X-Forwarded-For is believed. */
  TRUST_PROXY: optionalString,
  GUARD_KEY_SHARING_ADDRESSES: integer(10, 1, 100_000),
  GUARD_KEY_SHARING_WINDOW_SECONDS: integer(600, 10, 86_400),
  RESPONSE_CACHE: z.preprocess(
    emptyAsUndefined,
    z.enum(["off", "exact", "semantic"], { message: 'must be "off", "exact" or "semantic"' }).default("off"),
  ),
  RESPONSE_CACHE_TTL_SECONDS: integer(3600, 1, 30 * 86_400),
  RESPONSE_CACHE_SIMILARITY: decimal(0.95, 0.5, 1),
  RESPONSE_CACHE_MAX_MB: integer(64, 1, 4096),
  MEMORY_DEFAULT_MODE: z.preprocess(
    emptyAsUndefined,
    z
      .enum(["on", "off", "read-only", "write-only"], { message: 'must be "on", "off", "read-only" or "write-only"' })
      .default("on"),
  ),
  MEMORY_DEFAULT_SCOPE: z.preprocess(
    emptyAsUndefined,
    z.enum(["user", "conversation"], { message: 'must be "user" or "conversation"' }).default("user"),
  ),
  MEMORY_TOKEN_BUDGET: integer(1000, 50, 32_000),
  MEMORY_MIN_RELEVANCE: decimal(1.75, 0, 3),
  MEMORY_RECALL_TIMEOUT_MS: integer(300, 10, 10_000),
  MEMORY_CHUNK_TOKENS: integer(200, 20, 2_000),
  EMBEDDING_PROVIDER: z.preprocess(
    emptyAsUndefined,
    z.enum(["builtin", "openai", "vllm"], { message: 'must be "builtin", "openai" or "vllm"' }).default("builtin"),
  ),
  EMBEDDING_MODEL: optionalString,
  EMBEDDING_DIMENSIONS: integer(1536, 2, 8192),
  EMBEDDING_BASE_URL: httpUrl,
  EMBEDDING_API_KEY: optionalString,
  REDIS_URL: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .optional()
      .refine((v) => v === undefined || isUrlWithProtocol(v, ["redis:", "rediss:"]), {
        message: "must be a redis:// or rediss:// URL",
      }),
  ),
  REDIS_HOST: optionalString,
  REDIS_PORT: integer(6379, 1, 65535),
  REDIS_PASSWORD: optionalString,
  API_KEY_ENCRYPTION_KEY: optionalString,
  API_KEY_ENCRYPTION_KEYS_PREVIOUS: optionalString,
  POLAR_API_KEY: optionalString,
  POLAR_ORGANIZATION_ID: optionalString,
  POLAR_SERVER: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .default("production")
      .refine((v) => v === "production" || v === "sandbox" || isUrlWithProtocol(v, ["http:", "https:"]), {
        message: 'must be "production", "sandbox" or the http(s) URL of a Polar-compatible API',
      }),
  ),
  POLAR_WEBHOOK_SECRET: optionalString,
  POLAR_EVENT_NAME: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,100}$/, { message: "must be letters, digits, _ . : or - (at most 100)" })
      .default("llm.usage"),
  ),
  POLAR_SUCCESS_URL: httpUrl,
  RATE_LIMIT_PER_MINUTE: integer(60, 1, 10_000_000),
  RATE_LIMIT_PER_DAY: integer(10_000, 1, 1_000_000_000),
  // Requests per minute / day of the tiers named free, pro and enterprise in config/tiers.json (Perpetual AI V2's names).
  FREE_TIER_RATE_LIMIT_PER_MINUTE: optionalInteger(1, 10_000_000),
  FREE_TIER_RATE_LIMIT_PER_DAY: optionalInteger(1, 1_000_000_000),
  PRO_TIER_RATE_LIMIT_PER_MINUTE: optionalInteger(1, 10_000_000),
  PRO_TIER_RATE_LIMIT_PER_DAY: optionalInteger(1, 1_000_000_000),
  ENTERPRISE_TIER_RATE_LIMIT_PER_MINUTE: optionalInteger(1, 10_000_000),
  ENTERPRISE_TIER_RATE_LIMIT_PER_DAY: optionalInteger(1, 1_000_000_000),
  RATE_LIMIT_STORE: z.preprocess(
    emptyAsUndefined,
    z.enum(["redis", "memory"], { message: 'must be "redis" or "memory"' }).optional(),
  ),
  RATE_LIMIT_FAILURE_POLICY: z.preprocess(
    emptyAsUndefined,
    z.enum(["open", "closed"], { message: 'must be "open" or "closed"' }).default("open"),
  ),
  MODEL_NAME: optionalString,
  VLLM_URLS: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .optional()
      .refine((v) => v === undefined || v.split(",").every((u) => isUrlWithProtocol(u.trim(), ["http:", "https:"])), {
        message: "must be a comma-separated list of http:// or https:// URLs (each the server's /v1 base)",
      }),
  ),
  VLLM_API_KEY: optionalString,
  MAX_RETRY_ATTEMPTS: integer(2, 0, 10),
  LOAD_BALANCING: z.preprocess(
    emptyAsUndefined,
    z.enum(["least-busy", "round-robin"], { message: 'must be "least-busy" or "round-robin"' }).default("least-busy"),
  ),
  HEALTH_CHECK_INTERVAL_SECONDS: integer(10, 1, 3600),
  HEALTH_CHECK_TIMEOUT_SECONDS: integer(2, 1, 60),
  HEALTH_CHECK_FAILURE_THRESHOLD: integer(3, 1, 100),
  LOG_LEVEL: z.preprocess(
    emptyAsUndefined,
    z
      .enum(["error", "warn", "info", "http", "verbose", "debug", "silly"], {
        message: "must be one of error, warn, info, http, verbose, debug, silly",
      })
      .optional(),
  ),
  LOG_FORMAT: z.preprocess(
    emptyAsUndefined,
    z.enum(["json", "pretty"], { message: 'must be "json" or "pretty"' }).optional(),
  ),
  ADMIN_API_KEY: z.preprocess(
    emptyAsUndefined,
    z.string().min(32, { message: "must be at least 32 characters when set" }).optional(),
  ),
  METRICS_TOKEN: optionalString,
  OTEL_EXPORTER_OTLP_ENDPOINT: httpUrl,
  OTEL_EXPORTER_OTLP_HEADERS: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^\s*[^=,\s]+\s*=[^,]*(,\s*[^=,\s]+\s*=[^,]*)*$/, {
        message: "must be key=value pairs separated by commas",
      })
      .optional(),
  ),
  OTEL_SERVICE_NAME: z.preprocess(emptyAsUndefined, z.string().default("perpetual")),
  MAX_REQUEST_BODY_SIZE: byteSize(10 * 1024 ** 2),
  REQUEST_TIMEOUT_SECONDS: integer(300, 1, 3600),
  SHUTDOWN_TIMEOUT_SECONDS: integer(30, 0, 3600),
});

export type Env = z.infer<typeof envSchema>;
