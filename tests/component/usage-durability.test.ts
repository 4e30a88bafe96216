import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { type Database, migrate, openPostgres } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { type UsageRecord, UsageRecorder } from "../../src/usage";
import { startTestApp, testConfig } from "../helpers/app";
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

  test("When the process stops while the database is away, then rows go to the spool file and the next start writes them exactly once", async () => {
    const user = await createUser(direct, `spool-${randomUUID()}@example.com`, "free");
    const spoolPath = join(mkdtempSync(join(tmpdir(), "spool-")), "usage-spool.ndjson");
    const unreachable = openPostgres({ url: "postgres://postgres@127.0.0.1:1/none", poolSize: 1 });
    const { logger } = captureLogger();
    const down = new UsageRecorder({ db: unreachable, logger, spoolPath, maxBufferedRows: 3 });
    const row = (i: number): UsageRecord => ({
      requestId: `spool-${user.id}-${i}`,
      userId: user.id,
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
    });
    down.start();
    for (let i = 0; i < 8; i++) down.record(row(i));
    expect(readFileSync(spoolPath, "utf8").trim().split("\n")).toHaveLength(5); // beyond the 3 kept in memory
    await down.close(300);
    await unreachable.close();
    expect(readFileSync(spoolPath, "utf8").trim().split("\n")).toHaveLength(8);

    const up = new UsageRecorder({ db: direct, logger, spoolPath });
    up.start();
    await up.flush();
    expect(await count(user.id)).toBe(8);
    expect(existsSync(spoolPath)).toBe(false);
    // Replaying the same rows again (a crash mid-replay) adds nothing.
    up.record(row(0));
    await up.close();
    expect(await count(user.id)).toBe(8);
  });
});
