export { formatReset, RateLimiter, type Reservation } from "./limiter";
export { InProcessCounters } from "./memory-store";
export { RedisCounters } from "./redis-store";
export type { CounterStore, LimitName, Limits } from "./types";
