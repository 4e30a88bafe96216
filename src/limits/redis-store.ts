import { Redis } from "ioredis";
import type { CounterStore, LimitName, Limits, Usage, Windows } from "./types";

// One round trip settles what earlier requests of the user really used in these windows (ARGV[10], as ADJUST),
// checks the user's four limits and the key's two and, if none is exceeded, counts the request and reserves tokens.
// A limit of -1 is not checked (and a key without limits is not counted). Keys share the user's hash tag so the
// script also runs on Redis Cluster.
const TAKE = `
local settled = tonumber(ARGV[10])
if settled ~= 0 then
  for i = 3, 4 do
    if redis.call('EXISTS', KEYS[i]) == 1 then
      if redis.call('INCRBY', KEYS[i], settled) < 0 then redis.call('SET', KEYS[i], 0, 'KEEPTTL') end
    end
  end
end
local function num(key) return tonumber(redis.call('GET', key) or '0') end
local rm, rd, tm, td, krm, krd = num(KEYS[1]), num(KEYS[2]), num(KEYS[3]), num(KEYS[4]), num(KEYS[5]), num(KEYS[6])
local est = tonumber(ARGV[5])
local function over(used, limit) return tonumber(limit) >= 0 and used > tonumber(limit) end
local blocked = ''
if over(rm + 1, ARGV[1]) then blocked = 'requests_per_minute'
elseif over(rd + 1, ARGV[2]) then blocked = 'requests_per_day'
elseif over(tm + est, ARGV[3]) then blocked = 'tokens_per_minute'
elseif over(td + est, ARGV[4]) then blocked = 'tokens_per_day'
elseif over(krm + 1, ARGV[8]) then blocked = 'key_requests_per_minute'
elseif over(krd + 1, ARGV[9]) then blocked = 'key_requests_per_day'
end
if blocked == '' then
  rm = redis.call('INCR', KEYS[1])
  rd = redis.call('INCR', KEYS[2])
  tm = redis.call('INCRBY', KEYS[3], est)
  td = redis.call('INCRBY', KEYS[4], est)
  redis.call('EXPIRE', KEYS[1], ARGV[6]); redis.call('EXPIRE', KEYS[3], ARGV[6])
  redis.call('EXPIRE', KEYS[2], ARGV[7]); redis.call('EXPIRE', KEYS[4], ARGV[7])
  if tonumber(ARGV[8]) >= 0 or tonumber(ARGV[9]) >= 0 then
    krm = redis.call('INCR', KEYS[5])
    krd = redis.call('INCR', KEYS[6])
    redis.call('EXPIRE', KEYS[5], ARGV[6]); redis.call('EXPIRE', KEYS[6], ARGV[7])
  end
end
return {blocked, rm, rd, tm, td, krm, krd}`;

// Settles a token reservation in the windows it was made in. A window key that has expired is not recreated (it
// would live forever without a TTL); INCRBY keeps an existing key's TTL; a count never goes below 0.
const ADJUST = `
for i = 1, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('INCRBY', KEYS[i], ARGV[1]) < 0 then redis.call('SET', KEYS[i], 0, 'KEEPTTL') end
  end
end
return 0`;

const keysFor = (subject: string, w: Windows, keyId = "-") => [
  `rl:{${subject}}:rm:${w.minute}`,
  `rl:{${subject}}:rd:${w.day}`,
  `rl:{${subject}}:tm:${w.minute}`,
  `rl:{${subject}}:td:${w.day}`,
  `rl:{${subject}}:k:${keyId}:rm:${w.minute}`,
  `rl:{${subject}}:k:${keyId}:rd:${w.day}`,
];

/** How long a settlement may wait to ride on its user's next check before it is sent on its own. */
const SETTLEMENT_WAIT_MS = 50;

/** Token settlements of one user in one pair of windows, summed until they are sent. */
interface PendingSettlement {
  subject: string;
  windows: Windows;
  delta: number;
  /** What every settlement in the sum waits on: the call that carries it. */
  sent: Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

function pendingSettlement(subject: string, windows: Windows): PendingSettlement {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const sent = new Promise<void>((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  return { subject, windows, delta: 0, sent, resolve, reject };
}

const settlementId = (subject: string, w: Windows) => `${subject}|${w.minute}|${w.day}`;

type Scripts = {
  perpetualTake(...args: Array<string | number>): Promise<[string, number, number, number, number, number, number]>;
  perpetualAdjust(...args: Array<string | number>): Promise<number>;
};

/**
 * Counters in Redis, shared by every replica. Commands fail fast while disconnected (no offline queue).
 *
 * Settlements are summed per user and windows and sent with that user's next check, in the same script, so a busy
 * user costs one round trip per request instead of two; those of a user who sends nothing more go out on their own
 * within SETTLEMENT_WAIT_MS. Other replicas see a settlement that much later at most; this one never checks a
 * user's limits without applying its own pending settlements first.
 */
export class RedisCounters implements CounterStore {
  readonly redis: Redis;
  private readonly pending = new Map<string, PendingSettlement>();
  private sendTimer: NodeJS.Timeout | undefined;

  constructor(url: string, onError: (error: Error) => void) {
    this.redis = new Redis(url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2_000,
      commandTimeout: 1_000,
      // Keep trying to reconnect, at most every 2 s.
      retryStrategy: (attempt) => Math.min(attempt * 100, 2_000),
      lazyConnect: false,
      // Commands issued in the same tick (concurrent requests' checks and settlements) go out in one socket write:
      // on loopback a write's TCP processing is charged to the writer, and it was ~9 % of the busy CPU.
      enableAutoPipelining: true,
    });
    this.redis.on("error", onError);
    this.redis.defineCommand("perpetualTake", { numberOfKeys: 6, lua: TAKE });
    this.redis.defineCommand("perpetualAdjust", { numberOfKeys: 2, lua: ADJUST });
  }

  async take(subject: string, limits: Limits, estimate: number, windows: Windows) {
    const scripts = this.redis as unknown as Scripts;
    const { key } = limits;
    const id = settlementId(subject, windows);
    const settling = this.pending.get(id);
    this.pending.delete(id);
    const [blocked, rm, rd, tm, td, krm, krd] = await scripts
      .perpetualTake(
        ...keysFor(subject, windows, key?.id),
        limits.requestsPerMinute,
        limits.requestsPerDay,
        limits.tokensPerMinute ?? -1,
        limits.tokensPerDay ?? -1,
        estimate,
        120,
        2 * 86_400,
        key?.requestsPerMinute ?? -1,
        key?.requestsPerDay ?? -1,
        settling?.delta ?? 0,
      )
      .catch((error: unknown) => {
        settling?.reject(error);
        throw error;
      });
    settling?.resolve();
    return {
      blocked: (blocked || null) as LimitName | null,
      usage: {
        requestsMinute: rm,
        requestsDay: rd,
        tokensMinute: tm,
        tokensDay: td,
        keyRequestsMinute: krm,
        keyRequestsDay: krd,
      },
    };
  }

  async peek(subject: string, keyId: string | undefined, windows: Windows): Promise<Usage> {
    // Pending settlements go first: one connection runs commands in the order they were sent.
    const sent = this.sendPending();
    const [rm, rd, tm, td, krm, krd] = (await this.redis.mget(...keysFor(subject, windows, keyId ?? "-"))).map(Number);
    await sent;
    return {
      requestsMinute: rm ?? 0,
      requestsDay: rd ?? 0,
      tokensMinute: tm ?? 0,
      tokensDay: td ?? 0,
      keyRequestsMinute: keyId ? (krm ?? 0) : 0,
      keyRequestsDay: keyId ? (krd ?? 0) : 0,
    };
  }

  adjustTokens(subject: string, windows: Windows, delta: number): Promise<void> {
    if (delta === 0) return Promise.resolve();
    const id = settlementId(subject, windows);
    let settlement = this.pending.get(id);
    if (!settlement) {
      settlement = pendingSettlement(subject, windows);
      this.pending.set(id, settlement);
    }
    settlement.delta += delta;
    this.sendTimer ??= setTimeout(() => void this.sendPending(), SETTLEMENT_WAIT_MS).unref();
    return settlement.sent;
  }

  /** Sends every pending settlement on its own (each user's in one script call). */
  private async sendPending(): Promise<void> {
    clearTimeout(this.sendTimer);
    this.sendTimer = undefined;
    if (this.pending.size === 0) return;
    const settlements = [...this.pending.values()];
    this.pending.clear();
    const scripts = this.redis as unknown as Scripts;
    await Promise.all(
      settlements.map(({ subject, windows, delta, resolve, reject }) => {
        const [, , tokensMinute, tokensDay] = keysFor(subject, windows);
        const applied = delta === 0 ? Promise.resolve() : scripts.perpetualAdjust(tokensMinute!, tokensDay!, delta);
        return applied.then(resolve, reject);
      }),
    );
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
    await this.sendPending();
    this.redis.disconnect();
  }
}
