import type { Tiers } from "../config";
import { RateLimitedError, ServiceUnavailableError } from "../errors";
import type { Principal } from "../identity";
import type { Logger } from "../log";
import { InProcessCounters } from "./memory-store";
import { type CounterStore, DAY_MS, type LimitName, type Limits, MINUTE_MS, type Usage, windowsAt } from "./types";

export interface Reservation {
  /** OpenAI's x-ratelimit-* headers for the response. */
  headers: Record<string, string>;
  /** Replaces the token estimate with what the request really used (0 refunds it). Idempotent. */
  settle(actualTokens: number): void;
}

export interface RateLimiterOptions {
  store: CounterStore;
  /** What to do while the shared store (Redis) is unreachable. */
  failurePolicy: "open" | "closed";
  tiers: Tiers;
  defaults: { perMinute: number; perDay: number };
  logger: Logger;
  onReject?: (limit: LimitName) => void;
  /** A store operation failed ("take" falls back per the policy; "settle" leaves the estimate counted). */
  onStoreError?: (operation: "take" | "settle") => void;
  now?: () => number;
}

const LIMIT_TEXT: Record<LimitName, string> = {
  requests_per_minute: "requests per minute (RPM)",
  requests_per_day: "requests per day (RPD)",
  tokens_per_minute: "tokens per minute (TPM)",
  tokens_per_day: "tokens per day (TPD)",
  key_requests_per_minute: "requests per minute (RPM) of this API key",
  key_requests_per_day: "requests per day (RPD) of this API key",
};

/** OpenAI's duration style in reset headers: "12s", "6m0s", "1h2m3s". */
export interface Standing {
  limits: Limits;
  usage: Usage;
  minuteResetMs: number;
  dayResetMs: number;
}

export function formatReset(ms: number): string {
  const total = Math.max(1, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h}h${m}m${s}s` : m > 0 ? `${m}m${s}s` : `${s}s`;
}

/**
 * Requests and tokens per minute and per day, per user (so extra keys do not multiply a tier's budget), plus the
 * request limits an API key was created with, on that key's own counters. Tokens are
 * reserved as an estimate before the call and settled to the real usage afterwards. With Redis the counters are
 * shared by every replica; while it is unreachable the limiter fails open onto per-process counters (so one
 * replica cannot run away) or, configured so, fails closed with 503.
 */
export class RateLimiter {
  private readonly fallback = new InProcessCounters();
  private degraded = false;
  private readonly now: () => number;

  constructor(private readonly options: RateLimiterOptions) {
    this.now = options.now ?? Date.now;
  }

  limitsFor(principal: Principal): Limits {
    const tier = this.options.tiers.byName.get(principal.tier);
    const { keyLimits, apiKeyId } = principal;
    const keyLimited = keyLimits.requestsPerMinute !== null || keyLimits.requestsPerDay !== null;
    return {
      requestsPerMinute: tier?.requestsPerMinute ?? this.options.defaults.perMinute,
      requestsPerDay: tier?.requestsPerDay ?? this.options.defaults.perDay,
      tokensPerMinute: tier?.tokensPerMinute ?? null,
      tokensPerDay: tier?.tokensPerDay ?? null,
      ...(apiKeyId && keyLimited ? { key: { id: apiKeyId, ...keyLimits } } : {}),
    };
  }

  /** The caller's limits and what they used in the current windows, counting nothing (GET /v1/me/limits). */
  async standing(principal: Principal): Promise<Standing> {
    const now = this.now();
    const windows = windowsAt(now);
    const limits = this.limitsFor(principal);
    const keyId = limits.key?.id;
    const usage = await this.options.store
      .peek(principal.userId, keyId, windows)
      .catch(() => this.fallback.peek(principal.userId, keyId, windows));
    return { limits, usage, minuteResetMs: MINUTE_MS - (now % MINUTE_MS), dayResetMs: DAY_MS - (now % DAY_MS) };
  }

  async reserve(principal: Principal, estimate: number): Promise<Reservation> {
    const now = this.now();
    const windows = windowsAt(now);
    const limits = this.limitsFor(principal);
    const subject = principal.userId;
    let store = this.options.store;
    let taken: Awaited<ReturnType<CounterStore["take"]>>;
    try {
      taken = await store.take(subject, limits, estimate, windows);
      if (this.degraded) this.options.logger.info("rate limiter store is back");
      this.degraded = false;
    } catch (error) {
      this.options.onStoreError?.("take");
      if (!this.degraded)
        this.options.logger.warn("rate limiter store unreachable", { policy: this.options.failurePolicy, error });
      this.degraded = true;
      if (this.options.failurePolicy === "closed") {
        throw new ServiceUnavailableError(
          "Rate limiting is temporarily unavailable, so requests are refused. Retry shortly.",
          { code: "rate_limiter_unavailable" },
        );
      }
      store = this.fallback;
      taken = await store.take(subject, limits, estimate, windows);
    }
    const headers = rateLimitHeaders(limits, taken.usage, now);
    if (taken.blocked) {
      this.options.onReject?.(taken.blocked);
      throw rateLimited(taken.blocked, limits, taken.usage, estimate, now, headers);
    }
    let settled = false;
    return {
      headers,
      settle: (actualTokens) => {
        if (settled) return;
        settled = true;
        store.adjustTokens(subject, windows, actualTokens - estimate).catch((error: unknown) => {
          // The estimate stays counted until its window ends: the caller may be limited a little early.
          this.options.onStoreError?.("settle");
          this.options.logger.warn("rate limiter could not settle a reservation", { error });
        });
      },
    };
  }
}

function rateLimitHeaders(limits: Limits, usage: Usage, now: number): Record<string, string> {
  // The request budget that binds first: the user's, or the key's own when that has less left.
  let limit = limits.requestsPerMinute;
  let remaining = Math.max(0, limits.requestsPerMinute - usage.requestsMinute);
  const keyLimit = limits.key?.requestsPerMinute;
  if (keyLimit !== null && keyLimit !== undefined && keyLimit - usage.keyRequestsMinute < remaining) {
    limit = keyLimit;
    remaining = Math.max(0, keyLimit - usage.keyRequestsMinute);
  }
  const headers: Record<string, string> = {
    "x-ratelimit-limit-requests": String(limit),
    "x-ratelimit-remaining-requests": String(remaining),
    "x-ratelimit-reset-requests": formatReset(MINUTE_MS - (now % MINUTE_MS)),
  };
  if (limits.tokensPerMinute !== null) {
    headers["x-ratelimit-limit-tokens"] = String(limits.tokensPerMinute);
    headers["x-ratelimit-remaining-tokens"] = String(Math.max(0, limits.tokensPerMinute - usage.tokensMinute));
    headers["x-ratelimit-reset-tokens"] = formatReset(MINUTE_MS - (now % MINUTE_MS));
  }
  return headers;
}

function rateLimited(
  limit: LimitName,
  limits: Limits,
  usage: Usage,
  estimate: number,
  now: number,
  headers: Record<string, string>,
) {
  const perDay = limit.endsWith("per_day");
  const resetMs = perDay ? DAY_MS - (now % DAY_MS) : MINUTE_MS - (now % MINUTE_MS);
  const tokens = limit.startsWith("tokens");
  const [max, used] = {
    requests_per_minute: [limits.requestsPerMinute, usage.requestsMinute],
    requests_per_day: [limits.requestsPerDay, usage.requestsDay],
    tokens_per_minute: [limits.tokensPerMinute, usage.tokensMinute],
    tokens_per_day: [limits.tokensPerDay, usage.tokensDay],
    key_requests_per_minute: [limits.key?.requestsPerMinute ?? null, usage.keyRequestsMinute],
    key_requests_per_day: [limits.key?.requestsPerDay ?? null, usage.keyRequestsDay],
  }[limit];
  const message =
    `Rate limit reached for ${LIMIT_TEXT[limit]}: Limit ${max}, Used ${used}, Requested ${tokens ? estimate : 1}. ` +
    `Please try again in ${formatReset(resetMs)}.`;
  return new RateLimitedError(message, {
    kind: tokens ? "tokens" : "requests",
    headers: { ...headers, "retry-after": String(Math.ceil(resetMs / 1000)), "retry-after-ms": String(resetMs) },
  });
}
