import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { type CounterStore, InProcessCounters, RateLimiter, RedisCounters } from "../../src/limits";
import { testConfig } from "../helpers/app";
import { eventually } from "../helpers/eventually";
import { captureLogger } from "../helpers/logs";

function testRedisUrl(): string {
  const url = process.env.TEST_REDIS_URL;
  if (!url) throw new Error("TEST_REDIS_URL is not set: run the tests with `npm test`, which starts Redis");
  return url;
}

const MINUTE = 60_000;
// An injected clock: every test runs inside one window of its own choosing, whatever the wall clock says.
const NOON = Date.UTC(2031, 4, 6, 12, 0, 5);

const STORES: Array<[string, () => CounterStore]> = [
  ["in process", () => new InProcessCounters()],
  ["Redis", () => new RedisCounters(testRedisUrl(), () => {})],
];

describe.each(STORES)("The rate-limit contract, counters %s", (_name, openStore) => {
  let store: CounterStore;
  let now: number;
  let limiter: RateLimiter;
  let storeErrors: string[];

  beforeEach(async () => {
    store = openStore();
    await store.ready(3_000);
    now = NOON;
    storeErrors = [];
    limiter = new RateLimiter({
      store,
      failurePolicy: "closed",
      tiers: testConfig().tiers,
      defaults: { perMinute: 60, perDay: 1000 },
      logger: captureLogger().logger,
      onStoreError: (operation) => storeErrors.push(operation),
      now: () => now,
    });
  });
  afterEach(() => store.close());

  const principal = (userId: string, apiKeyId: string | null, requestsPerMinute: number | null) => ({
    userId,
    email: null,
    tier: "enterprise",
    via: "api_key" as const,
    apiKeyId,
    keyLimits: { requestsPerMinute, requestsPerDay: null },
    spend: { monthUsd: 0, balanceUsd: 0 },
  });

  test("When a user's other key has been busy, then a new key limited to 2 per minute still gets its own 2", async () => {
    const userId = randomUUID();
    const busyKey = principal(userId, randomUUID(), null);
    for (let i = 0; i < 5; i++) await limiter.reserve(busyKey, 1);
    const newKey = principal(userId, randomUUID(), 2);
    const first = await limiter.reserve(newKey, 1);
    expect(first.headers["x-ratelimit-limit-requests"]).toBe("2");
    expect(first.headers["x-ratelimit-remaining-requests"]).toBe("1");
    await limiter.reserve(newKey, 1);
    await expect(limiter.reserve(newKey, 1)).rejects.toMatchObject({
      status: 429,
      message: expect.stringContaining("of this API key"),
    });
    // The user's other key is not held back by the new key's limit.
    await expect(limiter.reserve(busyKey, 1)).resolves.toBeDefined();
    now += MINUTE;
    await expect(limiter.reserve(newKey, 1)).resolves.toBeDefined();
  });

  test("When a reservation settles far below its estimate, then the token count stops at 0", async () => {
    const user = principal(randomUUID(), null, null);
    const reservation = await limiter.reserve(user, 100);
    reservation.settle(-1_000); // more refunded than was ever reserved
    await new Promise((r) => setImmediate(r));
    const next = await limiter.reserve(user, 10);
    expect(Number(next.headers["x-ratelimit-remaining-tokens"])).toBe(
      Number(next.headers["x-ratelimit-limit-tokens"]) - 10,
    );
    expect(storeErrors).toEqual([]);
  });

  test("When the settle comes after its window ended, then the new window is not charged", async () => {
    const user = principal(randomUUID(), null, null);
    const reservation = await limiter.reserve(user, 100);
    now += MINUTE;
    reservation.settle(5_000);
    await new Promise((r) => setTimeout(r, 20));
    const next = await limiter.reserve(user, 10);
    expect(Number(next.headers["x-ratelimit-remaining-tokens"])).toBe(
      Number(next.headers["x-ratelimit-limit-tokens"]) - 10,
    );
  });
});

/** The rate-limit scripts Redis runs on one user's counters, as Redis's MONITOR reports them. */
async function commandsAbout(userId: string) {
  const client = new Redis(testRedisUrl());
  const monitor = await client.monitor();
  const commands: string[] = [];
  monitor.on("monitor", (_time: string, args: string[]) => {
    if (!/^evalsha$|^eval$/i.test(args[0] ?? "") || !args.some((a) => a.includes(userId))) return;
    commands.push(args[2] === "6" ? "take" : "settle");
  });
  return {
    commands,
    stop: () => {
      monitor.disconnect();
      client.disconnect();
    },
  };
}

describe("Redis counters", () => {
  const windows = { minute: Math.floor(NOON / MINUTE), day: Math.floor(NOON / 86_400_000) };
  const limits = { requestsPerMinute: 100, requestsPerDay: 1_000, tokensPerMinute: 10_000, tokensPerDay: 100_000 };

  test("When a window key has expired before its reservation settles, then settling does not recreate it without a TTL", async () => {
    const store = new RedisCounters(testRedisUrl(), () => {});
    const redis = new Redis(testRedisUrl());
    await store.ready(3_000);
    try {
      const userId = randomUUID();
      await store.take(userId, limits, 50, windows);
      const minuteKey = `rl:{${userId}}:tm:${windows.minute}`;
      const dayKey = `rl:{${userId}}:td:${windows.day}`;
      await redis.del(minuteKey); // what expiry does to a request that outlives its minute
      await store.adjustTokens(userId, windows, 200);
      expect(await redis.exists(minuteKey)).toBe(0);
      expect(Number(await redis.get(dayKey))).toBe(250);
      expect(await redis.ttl(dayKey)).toBeGreaterThan(0);
    } finally {
      redis.disconnect();
      await store.close();
    }
  });

  test("When a busy user's requests settle, then each settlement rides on the user's next check: one script call per request", async () => {
    const store = new RedisCounters(testRedisUrl(), () => {});
    const redis = new Redis(testRedisUrl());
    await store.ready(3_000);
    const userId = randomUUID();
    const sent = await commandsAbout(userId);
    try {
      const settled: Array<Promise<void>> = [];
      for (let i = 0; i < 5; i++) {
        const { usage } = await store.take(userId, limits, 100, windows);
        // Each check sees the settlements before it: 100 reserved now, 40 used by each earlier request.
        expect(usage.tokensMinute).toBe(40 * i + 100);
        settled.push(store.adjustTokens(userId, windows, 40 - 100));
      }
      await store.take(userId, limits, 100, windows);
      await Promise.all(settled);
      // Six checks, each one script call; no settlement of its own.
      await eventually(() => sent.commands.length >= 6);
      expect(sent.commands).toEqual(Array(6).fill("take"));
      expect(Number(await redis.get(`rl:{${userId}}:tm:${windows.minute}`))).toBe(5 * 40 + 100);
      expect(Number(await redis.get(`rl:{${userId}}:td:${windows.day}`))).toBe(5 * 40 + 100);
    } finally {
      redis.disconnect();
      await store.close();
      sent.stop();
    }
  });

  test("When a user sends nothing after their settlements, then they reach the other replicas on their own, summed in one call", async () => {
    const store = new RedisCounters(testRedisUrl(), () => {});
    const otherReplica = new RedisCounters(testRedisUrl(), () => {});
    await Promise.all([store.ready(3_000), otherReplica.ready(3_000)]);
    const userId = randomUUID();
    const sent = await commandsAbout(userId);
    try {
      for (let i = 0; i < 3; i++) await store.take(userId, limits, 100, windows);
      await Promise.all([0, 1, 2].map(() => store.adjustTokens(userId, windows, 20 - 100)));
      await eventually(() => sent.commands.length >= 4);
      expect(sent.commands).toEqual(["take", "take", "take", "settle"]);
      const seen = await otherReplica.peek(userId, undefined, windows);
      expect([seen.tokensMinute, seen.tokensDay]).toEqual([60, 60]);
    } finally {
      await Promise.all([store.close(), otherReplica.close()]);
      sent.stop();
    }
  });

  test("When a replica closes with settlements pending, then it sends them before disconnecting", async () => {
    const store = new RedisCounters(testRedisUrl(), () => {});
    const redis = new Redis(testRedisUrl());
    await store.ready(3_000);
    try {
      const userId = randomUUID();
      await store.take(userId, limits, 100, windows);
      const settled = store.adjustTokens(userId, windows, 250);
      await store.close();
      await settled;
      expect(Number(await redis.get(`rl:{${userId}}:tm:${windows.minute}`))).toBe(350);
    } finally {
      redis.disconnect();
    }
  });

  test("When settling fails, then the error is counted and logged, not swallowed", async () => {
    const store = new RedisCounters(testRedisUrl(), () => {});
    await store.ready(3_000);
    const { logger, text } = captureLogger();
    const errors: string[] = [];
    const limiter = new RateLimiter({
      store,
      failurePolicy: "open",
      tiers: testConfig().tiers,
      defaults: { perMinute: 60, perDay: 1000 },
      logger,
      onStoreError: (operation) => errors.push(operation),
      now: () => NOON,
    });
    const reservation = await limiter.reserve(
      {
        userId: randomUUID(),
        email: null,
        tier: "free",
        via: "api_key",
        apiKeyId: null,
        keyLimits: { requestsPerMinute: null, requestsPerDay: null },
        spend: { monthUsd: 0, balanceUsd: 0 },
      },
      10,
    );
    store.redis.disconnect();
    reservation.settle(3);
    for (let i = 0; i < 100 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(errors).toEqual(["settle"]);
    expect(text()).toContain("rate limiter could not settle a reservation");
    await store.close();
  });
});
