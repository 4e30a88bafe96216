import { Redis } from "ioredis";
import type { CounterStore, LimitName, Limits, Windows } from "./types";

// One round trip checks all four limits and, if none is exceeded, counts the request and reserves tokens.
// Keys share a hash tag so the script also runs on Redis Cluster.
const TAKE = `
local rm = tonumber(redis.call('GET', KEYS[1]) or '0')
local rd = tonumber(redis.call('GET', KEYS[2]) or '0')
local tm = tonumber(redis.call('GET', KEYS[3]) or '0')
local td = tonumber(redis.call('GET', KEYS[4]) or '0')
local est = tonumber(ARGV[5])
local blocked = ''
if rm + 1 > tonumber(ARGV[1]) then blocked = 'requests_per_minute'
elseif rd + 1 > tonumber(ARGV[2]) then blocked = 'requests_per_day'
elseif tonumber(ARGV[3]) >= 0 and tm + est > tonumber(ARGV[3]) then blocked = 'tokens_per_minute'
elseif tonumber(ARGV[4]) >= 0 and td + est > tonumber(ARGV[4]) then blocked = 'tokens_per_day'
end
if blocked == '' then
  rm = redis.call('INCR', KEYS[1])
  rd = redis.call('INCR', KEYS[2])
  tm = redis.call('INCRBY', KEYS[3], est)
  td = redis.call('INCRBY', KEYS[4], est)
  redis.call('EXPIRE', KEYS[1], ARGV[6]); redis.call('EXPIRE', KEYS[3], ARGV[6])
  redis.call('EXPIRE', KEYS[2], ARGV[7]); redis.call('EXPIRE', KEYS[4], ARGV[7])
end
return {blocked, rm, rd, tm, td}`;

const keysFor = (subject: string, w: Windows) => [
  `rl:{${subject}}:rm:${w.minute}`,
  `rl:{${subject}}:rd:${w.day}`,
  `rl:{${subject}}:tm:${w.minute}`,
  `rl:{${subject}}:td:${w.day}`,
];

/** Counters in Redis, shared by every replica. Commands fail fast while disconnected (no offline queue). */
export class RedisCounters implements CounterStore {
  readonly redis: Redis;

  constructor(url: string, onError: (error: Error) => void) {
    this.redis = new Redis(url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2_000,
      commandTimeout: 1_000,
      // Keep trying to reconnect, at most every 2 s.
      retryStrategy: (attempt) => Math.min(attempt * 100, 2_000),
      lazyConnect: false,
    });
    this.redis.on("error", onError);
    this.redis.defineCommand("perpetualTake", { numberOfKeys: 4, lua: TAKE });
  }

  async take(subject: string, limits: Limits, estimate: number, windows: Windows) {
    const run = (
      this.redis as unknown as {
        perpetualTake(...args: Array<string | number>): Promise<[string, number, number, number, number]>;
      }
    ).perpetualTake;
    const [blocked, rm, rd, tm, td] = await run.call(
      this.redis,
      ...keysFor(subject, windows),
      limits.requestsPerMinute,
      limits.requestsPerDay,
      limits.tokensPerMinute ?? -1,
      limits.tokensPerDay ?? -1,
      estimate,
      120,
      2 * 86_400,
    );
    return {
      blocked: (blocked || null) as LimitName | null,
      usage: { requestsMinute: rm, requestsDay: rd, tokensMinute: tm, tokensDay: td },
    };
  }

  async adjustTokens(subject: string, windows: Windows, delta: number) {
    if (delta === 0) return;
    const [, , tokMinute, tokDay] = keysFor(subject, windows);
    await this.redis.multi().incrby(tokMinute!, delta).incrby(tokDay!, delta).exec();
  }

  async ready(timeoutMs: number): Promise<void> {
    if (this.connected) return;
    await Promise.race([
      new Promise((resolve) => this.redis.once("ready", resolve)),
      new Promise((resolve) => setTimeout(resolve, timeoutMs).unref()),
    ]);
  }

  get connected(): boolean {
    return this.redis.status === "ready";
  }

  async close() {
    this.redis.disconnect();
  }
}
