export { formatReset, RateLimiter, type Reservation, type Standing } from "./limiter";
export { InProcessCounters } from "./memory-store";
export { RedisCounters } from "./redis-store";
export type { CounterStore, LimitName, Limits } from "./types";
