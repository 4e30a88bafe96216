import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { Redis } from "ioredis";
import OpenAI from "openai";
import { type Database, migrate, openPostgres } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { RateLimiter, RedisCounters } from "../../src/limits";
import { startTestApp, type TestApp, testConfig } from "../helpers/app";
import { inThisMinute, TestClock } from "../helpers/clock";
import { captureLogger } from "../helpers/logs";
import { createTestDatabase } from "../helpers/postgres";

jest.setTimeout(120_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function testRedisUrl(): string {
  const url = process.env.TEST_REDIS_URL;
  if (!url) throw new Error("TEST_REDIS_URL is not set: run the tests with `npm test`, which starts Redis");
  return url;
}

const mock = (i: number, extra: Record<string, unknown> = {}) =>
  ({
    model: "gpt-4o",
    messages: [{ role: "user", content: `q${i}` }],
    mock_response: `a${i}`,
    ...extra,
  }) as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming;

describe("Rate limits on real Redis and PostgreSQL 15", () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;
  let redisUrl: string;
  let redis: Redis;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = openPostgres({ url: database.url, poolSize: 8 });
    await migrate(db);
    // A database of its own in the shared Redis, emptied first.
    const url = new URL(testRedisUrl());
    url.pathname = `/${1 + (process.pid % 14)}`;
    redisUrl = url.toString();
    redis = new Redis(redisUrl);
    await redis.flushdb();
  });

  afterAll(async () => {
    redis.disconnect();
    await db.close();
    await database.drop();
  });

  const appEnv = (extra: Record<string, string> = {}) => ({
    DATABASE_URL: database.url,
    REDIS_URL: redisUrl,
    ...extra,
  });

  test("When 200 concurrent requests from one key hit three replicas sharing Redis, then exactly the limit passes", async () => {
    const apps: TestApp[] = [];
    // One frozen instant for the three replicas: every request falls in one window, however long the burst takes.
    const clock = new TestClock(inThisMinute());
    for (let i = 0; i < 3; i++) apps.push(await startTestApp({ db, config: testConfig(appEnv()), clock: clock.now }));
    try {
      const user = await createUser(db, `burst-${randomBytes(3).toString("hex")}@example.com`, "enterprise");
      const key = (await createApiKey(db, user.id, { rateLimitPerMinute: 50 })).key;
      const clients = apps.map((app) => new OpenAI({ apiKey: key, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 }));
      const outcomes = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          clients[i % 3]!.chat.completions.create(mock(i)).then(
            () => "ok",
            (error) => (error instanceof OpenAI.RateLimitError ? "limited" : `other: ${error}`),
          ),
        ),
      );
      expect(outcomes.filter((o) => o === "ok")).toHaveLength(50);
      expect(outcomes.filter((o) => o === "limited")).toHaveLength(150);
    } finally {
      for (const app of apps) await app.close();
    }
  });

  test("When limited, then the 429 is OpenAI-shaped with retry-after and every response carries x-ratelimit headers", async () => {
    const app = await startTestApp({ db, config: testConfig(appEnv()), clock: new TestClock(inThisMinute()).now });
    try {
      const user = await createUser(db, `headers-${randomBytes(3).toString("hex")}@example.com`, "free");
      const key = (await createApiKey(db, user.id)).key;
      const client = new OpenAI({ apiKey: key, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
      const first = await client.chat.completions.create(mock(0)).withResponse();
      expect(first.response.headers.get("x-ratelimit-limit-requests")).toBe("10");
      expect(first.response.headers.get("x-ratelimit-remaining-requests")).toBe("9");
      expect(first.response.headers.get("x-ratelimit-reset-requests")).toMatch(/^\d+s$/);
      expect(first.response.headers.get("x-ratelimit-limit-tokens")).toBe("20000");
      for (let i = 1; i < 10; i++) await client.chat.completions.create(mock(i));
      const error = await client.chat.completions.create(mock(10)).catch((e) => e);
      expect(error).toBeInstanceOf(OpenAI.RateLimitError);
      expect(error.code).toBe("rate_limit_exceeded");
      expect(error.type).toBe("requests");
      expect(error.message).toContain("requests per minute");
      expect(Number(error.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(Number(error.headers.get("retry-after-ms"))).toBeLessThanOrEqual(60_000);
      expect(error.headers.get("x-ratelimit-remaining-requests")).toBe("0");
    } finally {
      await app.close();
    }
  });

  test("When streamed, plain and aborted requests finish, then the token counter equals the tokens recorded", async () => {
    const clock = new TestClock(inThisMinute());
    const app = await startTestApp({ db, config: testConfig(appEnv()), clock: clock.now });
    try {
      const user = await createUser(db, `tokens-${randomBytes(3).toString("hex")}@example.com`, "free");
      const key = (await createApiKey(db, user.id)).key;
      const client = new OpenAI({ apiKey: key, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
      await client.chat.completions.create(mock(0, { max_tokens: 2000 }));
      const stream = await client.chat.completions.create({
        ...mock(1),
        stream: true,
      } as OpenAI.Chat.ChatCompletionCreateParamsStreaming);
      for await (const _ of stream);
      const controller = new AbortController();
      const aborted = await client.chat.completions.create(
        {
          ...mock(2),
          mock_response: "many words ".repeat(2000),
          stream: true,
        } as OpenAI.Chat.ChatCompletionCreateParamsStreaming,
        { signal: controller.signal },
      );
      for await (const _ of aborted) controller.abort();
      await sleep(300);
      await app.services.usage.flush();
      const [recorded] = await db.query<{ tokens: number }>(
        "select coalesce(sum(total_tokens), 0)::int as tokens from usage_logs where user_id = $1",
        [user.id],
      );
      const minute = Math.floor(clock.now() / 60_000);
      const counted = Number(await redis.get(`rl:{${user.id}}:tm:${minute}`));
      expect(recorded!.tokens).toBeGreaterThan(0);
      expect(counted).toBe(recorded!.tokens);
      const next = await client.chat.completions.create(mock(3)).withResponse();
      expect(Number(next.response.headers.get("x-ratelimit-remaining-tokens"))).toBeGreaterThan(
        20_000 - recorded!.tokens - 600,
      );
    } finally {
      await app.close();
    }
  });

  test("When the minute changes, then the request window resets", async () => {
    let now = Date.UTC(2030, 0, 1, 12, 0, 30);
    const { logger } = captureLogger();
    const store = new RedisCounters(redisUrl, () => {});
    const tiers = testConfig().tiers;
    const limiter = new RateLimiter({
      store,
      failurePolicy: "open",
      tiers,
      defaults: { perMinute: 60, perDay: 1000 },
      logger,
      now: () => now,
    });
    const principal = {
      userId: crypto.randomUUID(),
      email: null,
      tier: "free",
      via: "api_key" as const,
      apiKeyId: crypto.randomUUID(),
      keyLimits: { requestsPerMinute: 2, requestsPerDay: null },
      spend: { monthUsd: 0, balanceUsd: 0 },
    };
    try {
      await limiter.reserve(principal, 1);
      await limiter.reserve(principal, 1);
      await expect(limiter.reserve(principal, 1)).rejects.toMatchObject({ status: 429 });
      now += 30_000;
      const next = await limiter.reserve(principal, 1);
      expect(next.headers["x-ratelimit-remaining-requests"]).toBe("1");
    } finally {
      await store.close();
    }
  });

  describe("Redis going away", () => {
    let server: ChildProcess | undefined;
    let port = 0;

    const startRedis = async () => {
      server = spawn(
        execFileSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" }).trim(),
        ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        { stdio: "ignore" },
      );
      const probe = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      for (let i = 0; i < 50; i++) {
        try {
          await probe.connect();
          break;
        } catch {
          await sleep(100);
        }
      }
      probe.disconnect();
    };
    const stopRedis = async () => {
      const running = server;
      if (!running || running.exitCode !== null || running.signalCode !== null) return;
      const exited = new Promise((r) => running.once("exit", r));
      running.kill("SIGKILL");
      await exited;
    };

    beforeEach(async () => {
      port = await new Promise<number>((resolve) => {
        const s = createServer().listen(0, "127.0.0.1", () => {
          const p = (s.address() as { port: number }).port;
          s.close(() => resolve(p));
        });
      });
      await startRedis();
    });
    afterEach(stopRedis);

    test("When Redis dies with fail-open, then requests keep being served under per-replica limits, and Redis is used again when it returns", async () => {
      const app = await startTestApp({
        db,
        config: testConfig(appEnv({ REDIS_URL: `redis://127.0.0.1:${port}` })),
        clock: new TestClock(inThisMinute()).now,
      });
      try {
        const user = await createUser(db, `open-${randomBytes(3).toString("hex")}@example.com`, "enterprise");
        const key = (await createApiKey(db, user.id, { rateLimitPerMinute: 5 })).key;
        const client = new OpenAI({ apiKey: key, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
        await client.chat.completions.create(mock(0));
        await stopRedis();
        const during = await Promise.all(
          Array.from({ length: 8 }, (_, i) =>
            client.chat.completions.create(mock(i)).then(
              () => "ok",
              () => "limited",
            ),
          ),
        );
        // The fallback counts on its own: at most the limit, never unlimited.
        expect(during.filter((o) => o === "ok").length).toBe(5);
        await startRedis();
        const counters = app.services.counters as RedisCounters;
        for (let i = 0; i < 50 && !counters.connected; i++) await sleep(100);
        expect(counters.connected).toBe(true);
        const again = await client.chat.completions.create(mock(9)).withResponse();
        // Back on Redis, which had only counted the first request (its data was lost with the process).
        expect(again.response.headers.get("x-ratelimit-remaining-requests")).toBe("4");
      } finally {
        await app.close();
      }
    });

    test("When Redis dies with fail-closed, then requests get 503 rate_limiter_unavailable", async () => {
      const app = await startTestApp({
        db,
        config: testConfig(appEnv({ REDIS_URL: `redis://127.0.0.1:${port}`, RATE_LIMIT_FAILURE_POLICY: "closed" })),
      });
      try {
        const user = await createUser(db, `closed-${randomBytes(3).toString("hex")}@example.com`, "enterprise");
        const key = (await createApiKey(db, user.id)).key;
        const client = new OpenAI({ apiKey: key, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
        await client.chat.completions.create(mock(0));
        await stopRedis();
        const error = await client.chat.completions.create(mock(1)).catch((e) => e);
        expect(error.status).toBe(503);
        expect(error.code).toBe("rate_limiter_unavailable");
      } finally {
        await app.close();
      }
    });
  });

  test("When the SDK is allowed to retry, then it waits for retry-after and succeeds in the next window", async () => {
    // 5 s before a minute ends, running at real pace: retry-after is short, and the SDK really waits it out.
    const clock = new TestClock(inThisMinute(55_000), true);
    const app = await startTestApp({ db, config: testConfig(appEnv()), clock: clock.now });
    try {
      const user = await createUser(db, `retry-${randomBytes(3).toString("hex")}@example.com`, "enterprise");
      const key = (await createApiKey(db, user.id, { rateLimitPerMinute: 1 })).key;
      const client = new OpenAI({ apiKey: key, baseURL: `${app.baseUrl}/v1`, maxRetries: 2 });
      await client.chat.completions.create(mock(0)).catch(() => {});
      const minuteEnd = Math.ceil(clock.now() / 60_000) * 60_000;
      const { response } = await client.chat.completions.create(mock(1)).withResponse();
      expect(response.status).toBe(200);
      expect(clock.now()).toBeGreaterThanOrEqual(minuteEnd);
    } finally {
      await app.close();
    }
  });
});
