/**
 * The four budgets of a user (their tier's), and the request budgets of the API key used, counted on the key's
 * own counters: a key limited to 2 per minute allows 2 of its own, whatever the user's other keys did. null: none.
 */
export interface Limits {
  requestsPerMinute: number;
  requestsPerDay: number;
  tokensPerMinute: number | null;
  tokensPerDay: number | null;
  key?: { id: string; requestsPerMinute: number | null; requestsPerDay: number | null };
}

export type LimitName =
  | "requests_per_minute"
  | "requests_per_day"
  | "tokens_per_minute"
  | "tokens_per_day"
  | "key_requests_per_minute"
  | "key_requests_per_day";

/** Counters after a take, for the response headers (key counters 0 without key limits). */
export interface Usage {
  requestsMinute: number;
  requestsDay: number;
  tokensMinute: number;
  tokensDay: number;
  keyRequestsMinute: number;
  keyRequestsDay: number;
}

/** Fixed windows: the current UTC minute and UTC day. */
export interface Windows {
  minute: number;
  day: number;
}

export const MINUTE_MS = 60_000;
export const DAY_MS = 86_400_000;

export function windowsAt(now: number): Windows {
  return { minute: Math.floor(now / MINUTE_MS), day: Math.floor(now / DAY_MS) };
}

/**
 * Where counters live: Redis (shared by every replica) or this process. `take` checks every limit and, only when
 * none would be exceeded, counts the request and reserves the token estimate, atomically.
 */
export interface CounterStore {
  take(
    subject: string,
    limits: Limits,
    estimate: number,
    windows: Windows,
  ): Promise<{ blocked: LimitName | null; usage: Usage }>;
  /** Moves the token reservation to the real count (delta may be negative; counters never go below 0), in the
   * windows it was made in; a window that has already ended is left alone. */
  adjustTokens(subject: string, windows: Windows, delta: number): Promise<void>;
  /** The counters in these windows, without counting anything (the key's are 0 when keyId is undefined). */
  peek(subject: string, keyId: string | undefined, windows: Windows): Promise<Usage>;
  /** Resolves when the store can answer, or after `timeoutMs` (requests then use the failure policy). */
  ready(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}
