import { randomUUID } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { type Database, migrate, openPostgres } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { QUARANTINE_FILE, type UsageRecord, UsageRecorder } from "../../src/usage";
import { startTestApp, testConfig } from "../helpers/app";
import { ADAPTERS, type OpenedDatabase } from "../helpers/databases";
import { captureLogger } from "../helpers/logs";
import { createTestDatabase } from "../helpers/postgres";
import { startTcpProxy } from "../helpers/tcp-proxy";

jest.setTimeout(120_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("Usage rows survive database outages", () => {
  let database: { url: string; drop: () => Promise<void> };
  let direct: Database;

  beforeAll(async () => {
    database = await createTestDatabase();
    direct = openPostgres({ url: database.url, poolSize: 2 });
    await migrate(direct);
  });
  afterAll(async () => {
    await direct.close();
    await database.drop();
  });

  const count = async (userId: string) =>
    (await direct.query<{ n: number }>("select count(*)::int as n from usage_logs where user_id = $1", [userId]))[0]!.n;

  test("When PostgreSQL is unreachable for 30 s during traffic, then every request's row is written once it returns", async () => {
    const target = new URL(database.url);
    const proxy = await startTcpProxy(target.hostname, Number(target.port));
    const viaProxy = new URL(database.url);
    viaProxy.port = String(proxy.port);
    const db = openPostgres({ url: viaProxy.toString(), poolSize: 4 });
    const user = await createUser(direct, `outage-${randomUUID()}@example.com`, "enterprise");
    const key = (await createApiKey(direct, user.id)).key;
    // A long auth cache: the outage must not turn into 503s for a caller already seen.
    const app = await startTestApp({ db, config: testConfig({ AUTH_CACHE_TTL_SECONDS: "300" }) });
    const client = new OpenAI({ apiKey: key, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
    const ask = (i: number) =>
      client.chat.completions.create({
        model: "gpt-4o",
        messages: [{ role: "user", content: `q${i}` }],
        mock_response: `a${i}`,
      } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming);
    try {
      let sent = 0;
      for (; sent < 5; sent++) await ask(sent);
      await proxy.cut();
      const outageEnds = Date.now() + 30_000;
      while (Date.now() < outageEnds) {
        await ask(sent++);
        await sleep(500);
      }
      expect(await count(user.id)).toBeLessThan(sent);
      await proxy.restore();
      for (let i = 0; i < 100 && (await count(user.id)) < sent; i++) await sleep(200);
      expect(await count(user.id)).toBe(sent);
      const [totals] = await direct.query<{ total_requests: number }>(
        "select total_requests from users where id = $1",
        [user.id],
      );
      expect(Number(totals!.total_requests)).toBe(sent);
    } finally {
      await app.close();
      await db.close();
      proxy.close();
    }
  });

  test("When the process stops while the database is away, then the journal keeps every row and the next start writes them exactly once", async () => {
    const user = await createUser(direct, `journal-${randomUUID()}@example.com`, "free");
    const journalDir = mkdtempSync(join(tmpdir(), "journal-"));
    const unreachable = openPostgres({ url: "postgres://postgres@127.0.0.1:1/none", poolSize: 1 });
    const { logger } = captureLogger();
    const down = new UsageRecorder({ db: unreachable, logger, journalDir, maxBufferedRows: 3 });
    down.start();
    await Promise.all(Array.from({ length: 8 }, (_, i) => down.record(usageRow(user.id, `journal-${user.id}-${i}`))));
    expect(journalLines(journalDir)).toBe(8);
    expect(down.pending).toBe(3); // the memory bound; the rest wait in the journal only
    await down.close(300);
    await unreachable.close();
    expect(journalLines(journalDir)).toBe(8);

    const up = new UsageRecorder({ db: direct, logger, journalDir });
    up.start();
    await up.flush();
    expect(await count(user.id)).toBe(8);
    expect(journalLines(journalDir)).toBe(0);
    // Replaying the same rows again (a crash between the insert and the journal's confirmation) adds nothing.
    await up.record(usageRow(user.id, `journal-${user.id}-0`));
    await up.close();
    expect(await count(user.id)).toBe(8);
  });

  test("When the database returns after more rows than the memory bound, then the rows that waited only in the journal are written too", async () => {
    const user = await createUser(direct, `evicted-${randomUUID()}@example.com`, "free");
    // The database as the recorder sees it: refusing connections until `down` is cleared.
    let down = true;
    const flaky: Database = {
      ...direct,
      query: (sql, params) =>
        down ? Promise.reject(new Error("Connection terminated unexpectedly")) : direct.query(sql, params),
    };
    const { logger } = captureLogger();
    const recorder = new UsageRecorder({
      db: flaky,
      logger,
      journalDir: mkdtempSync(join(tmpdir(), "journal-")),
      maxBufferedRows: 5,
      flushIntervalMs: 60_000,
    });
    recorder.start();
    await Promise.all(Array.from({ length: 40 }, (_, i) => recorder.record(usageRow(user.id, `ev-${user.id}-${i}`))));
    await recorder.flush();
    expect(recorder.pending).toBe(5);
    down = false;
    await recorder.close();
    expect(await count(user.id)).toBe(40);
  });
});

describe("Usage rows keyed by the server's own request id", () => {
  test("When callers reuse one x-request-id, then every completion still gets its own row, and it is echoed for tracing", async () => {
    const database = await createTestDatabase();
    const db = openPostgres({ url: database.url, poolSize: 4 });
    await migrate(db);
    const app = await startTestApp({ db });
    try {
      const callers = await Promise.all(
        ["forger", "victim"].map(async (name) => {
          const user = await createUser(db, `${name}-${randomUUID()}@example.com`, "enterprise");
          const key = (await createApiKey(db, user.id)).key;
          const client = new OpenAI({ apiKey: key, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
          return { userId: user.id, client };
        }),
      );
      const fixed = "same-id-every-time";
      const serverIds = new Set<string>();
      for (const { client } of [
        callers[0]!,
        callers[0]!,
        callers[0]!,
        callers[0]!,
        callers[0]!,
        callers[0]!,
        callers[1]!,
      ]) {
        const { response } = await client.chat.completions
          .create({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }], mock_response: "ok" } as never, {
            headers: { "x-request-id": fixed },
          })
          .withResponse();
        expect(response.headers.get("x-request-id")).toBe(fixed);
        serverIds.add(response.headers.get("x-perpetual-request-id")!);
      }
      expect(serverIds.size).toBe(7);
      await app.services.usage.flush();
      const rows = await db.query<{ user_id: string; request_id: string; client_request_id: string }>(
        "select user_id, request_id, client_request_id from usage_logs",
      );
      expect(rows.filter((r) => r.user_id === callers[0]!.userId)).toHaveLength(6);
      expect(rows.filter((r) => r.user_id === callers[1]!.userId)).toHaveLength(1);
      expect(rows.every((r) => r.client_request_id === fixed && serverIds.has(r.request_id))).toBe(true);
    } finally {
      await app.close();
      await db.close();
      await database.drop();
    }
  });

  test("When a request is refused before the provider call, then it still gets a row with its status and no tokens", async () => {
    const database = await createTestDatabase();
    const db = openPostgres({ url: database.url, poolSize: 4 });
    await migrate(db);
    const app = await startTestApp({ db });
    try {
      const user = await createUser(db, `refused-${randomUUID()}@example.com`, "enterprise");
      // A daily limit: the second allowed call is refused unless a UTC midnight falls between the two.
      const key = (await createApiKey(db, user.id, { rateLimitPerDay: 1 })).key;
      const client = new OpenAI({ apiKey: key, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
      const ask = (body: Record<string, unknown>) =>
        client.chat.completions.create(body as never).then(
          () => 200,
          (e: { status: number }) => e.status,
        );
      expect(await ask({ model: "gpt-4o", messages: "not a list" })).toBe(400);
      expect(await ask({ model: "no-such-model", messages: [{ role: "user", content: "x" }] })).toBe(404);
      expect(await ask({ model: "gpt-4o", messages: [{ role: "user", content: "x" }], mock_response: "ok" })).toBe(200);
      expect(await ask({ model: "gpt-4o", messages: [{ role: "user", content: "x" }], mock_response: "ok" })).toBe(429);
      await app.services.usage.flush();
      const rows = await db.query<{ status_code: number; error_code: string | null; total_tokens: number }>(
        "select status_code, error_code, total_tokens from usage_logs where user_id = $1 order by id",
        [user.id],
      );
      expect(rows.map((r) => r.status_code).sort()).toEqual([200, 400, 404, 429]);
      expect(rows.find((r) => r.status_code === 429)).toMatchObject({
        error_code: "rate_limit_exceeded",
        total_tokens: 0,
      });
      expect(rows.find((r) => r.status_code === 404)).toMatchObject({ error_code: "model_not_found" });
    } finally {
      await app.close();
      await db.close();
      await database.drop();
    }
  });
});

describe("Usage rows no tenant can poison or forge", () => {
  describe.each(ADAPTERS)("on %s", (_name, open) => {
    let opened: OpenedDatabase;
    beforeAll(async () => {
      opened = await open();
      await migrate(opened.db);
    });
    afterAll(() => opened.cleanup());

    const rowsOf = async (userId: string) =>
      opened.db.query<{ request_id: string; model: string }>(
        "select request_id, model from usage_logs where user_id = $1 order by request_id",
        [userId],
      );

    test("When one tenant's record holds NUL bytes and lone surrogates, then every tenant's rows land, that text made storable", async () => {
      const victim = await createUser(opened.db, `victim-${randomUUID()}@example.com`, "free");
      const attacker = await createUser(opened.db, `attacker-${randomUUID()}@example.com`, "free");
      const { logger } = captureLogger();
      const recorder = new UsageRecorder({ db: opened.db, logger, journalDir: mkdtempSync(join(tmpdir(), "j-")) });
      recorder.start();
      for (let i = 0; i < 5; i++) void recorder.record(usageRow(victim.id, `victim-${victim.id}-${i}`));
      void recorder.record({
        ...usageRow(attacker.id, `attacker-${attacker.id}`),
        model: "gpt\u0000-4o\ud800",
        memory: [{ role: "user", content: "nul \u0000 here, lone \udc00 there" }],
      });
      await recorder.close();
      expect(await rowsOf(victim.id)).toHaveLength(5);
      const [poisoned] = await rowsOf(attacker.id);
      expect(poisoned!.model).toBe("gpt\ufffd-4o\ufffd");
      const [outbox] = await opened.db.query<{ messages: Array<{ content: string }> }>(
        "select messages from memory_outbox where user_id = $1",
        [attacker.id],
      );
      expect(outbox!.messages[0]!.content).toBe("nul \ufffd here, lone \ufffd there");
    });

    test("When the database refuses one record for its data, then only that record goes to usage_dead_letters and the batch's others land", async () => {
      const victim = await createUser(opened.db, `victim2-${randomUUID()}@example.com`, "free");
      const { logger } = captureLogger();
      let deadLetters = 0;
      const recorder = new UsageRecorder({
        db: opened.db,
        logger,
        journalDir: mkdtempSync(join(tmpdir(), "j-")),
        onDeadLetter: () => deadLetters++,
      });
      recorder.start();
      for (let i = 0; i < 6; i++) void recorder.record(usageRow(victim.id, `ok-${victim.id}-${i}`));
      // Beyond int4: PostgreSQL refuses this one row (22003), whatever its text.
      void recorder.record({ ...usageRow(victim.id, `bad-${victim.id}`), latencyMs: 2 ** 40 });
      await recorder.close();
      expect(await rowsOf(victim.id)).toHaveLength(6);
      expect(deadLetters).toBe(1);
      const [letter] = await opened.db.query<{ request_id: string; reason: string; record: string; user_id: string }>(
        "select request_id, reason, record, user_id from usage_dead_letters where request_id = $1",
        [`bad-${victim.id}`],
      );
      expect(letter!.reason).toMatch(/^22003/);
      expect(letter!.user_id).toBe(victim.id);
      expect(JSON.parse(letter!.record)).toMatchObject({ latencyMs: 2 ** 40 });
    });

    test("When the journal ends in a torn line, then start-up quarantines it and replays the rest", async () => {
      const user = await createUser(opened.db, `torn-${randomUUID()}@example.com`, "free");
      const journalDir = mkdtempSync(join(tmpdir(), "j-"));
      const lines = [0, 1, 2].map((i) => JSON.stringify(usageRow(user.id, `torn-${user.id}-${i}`)));
      writeFileSync(join(journalDir, "usage-0.journal"), `${lines.join("\n")}\n${lines[0]!.slice(0, 40)}`);
      writeFileSync(join(journalDir, "usage-1.journal"), '{"requestId": 42}\n');
      const { logger, text } = captureLogger();
      for (let restart = 0; restart < 2; restart++) {
        const recorder = new UsageRecorder({ db: opened.db, logger, journalDir });
        expect(() => recorder.start()).not.toThrow();
        await recorder.close();
      }
      expect(await rowsOf(user.id)).toHaveLength(3);
      const quarantine = readFileSync(join(journalDir, QUARANTINE_FILE), "utf8").trim().split("\n");
      expect(quarantine).toHaveLength(2);
      expect(readdirSync(journalDir).filter((f) => f.endsWith(".journal"))).toEqual([]);
      expect(text()).toContain("unreadable usage journal lines quarantined");
    });
  });
});

function usageRow(userId: string, requestId: string): UsageRecord {
  return {
    requestId,
    clientRequestId: null,
    userId,
    apiKeyId: null,
    endpoint: "/v1/chat/completions",
    provider: "openai",
    model: "gpt-4o",
    promptTokens: 1,
    completionTokens: 1,
    cachedTokens: 0,
    totalTokens: 2,
    costUsd: 0.001,
    costUnknown: false,
    usageEstimated: false,
    latencyMs: 5,
    timeToFirstTokenMs: null,
    statusCode: 200,
    errorCode: null,
    stream: false,
    conversationId: null,
    retrievalCalls: 0,
    retrievalLatencyMs: 0,
    createdAt: new Date().toISOString(),
  };
}

function journalLines(dir: string): number {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".journal"))
    .reduce((n, f) => n + readFileSync(join(dir, f), "utf8").split("\n").filter(Boolean).length, 0);
}
