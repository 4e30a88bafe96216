/**
 * The time, in epoch milliseconds, as the services read it: the rate limiter's windows, the outboxes' retry
 * schedule, the usage report's "today". Tests inject their own, so nothing waits for a wall-clock boundary.
 */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();
