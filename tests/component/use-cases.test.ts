import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import OpenAI from "openai";
import { type Database, migrate, openPostgres } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { type FakeOpenAiUpstream, startFakeOpenAiUpstream } from "../fakes/openai-upstream";
import { type FakeQdrant, startFakeQdrant } from "../fakes/qdrant-server";
import { startTestApp, type TestApp, testConfig } from "../helpers/app";
import { TestClock } from "../helpers/clock";
import { eventually } from "../helpers/eventually";
import { jsonClient } from "../helpers/http";
import { createTestDatabase } from "../helpers/postgres";

/**
 * The account use cases (src/app) own their cross-replica announcement: a change made through one replica is in
 * force on every other within moments, not after AUTH_CACHE_TTL_SECONDS (set to 300 s here so only the announcement
 * can do it). Within moments, not before the call returns: Redis answers the publisher before it has necessarily
 * written to the subscribers, so on a busy machine the next request can reach the other replica first.
 */
describe("Use cases across replicas sharing Redis, on PostgreSQL 15", () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;
  let upstream: FakeOpenAiUpstream;
  let qdrant: FakeQdrant;
  let a: TestApp;
  let b: TestApp;
  // One frozen minute for both replicas (rate-limit counts are compared below), an hour ahead so outbox rows
  // written at the database's now() are due.
  const clock = new TestClock(Date.now() + 3_600_000);

  beforeAll(async () => {
    database = await createTestDatabase();
    db = openPostgres({ url: database.url, poolSize: 6 });
    await migrate(db);
    const url = new URL(process.env.TEST_REDIS_URL ?? "");
    url.pathname = `/${1 + ((process.pid + 3) % 14)}`;
    const redis = new Redis(url.toString());
    await redis.flushdb();
    redis.disconnect();
    upstream = await startFakeOpenAiUpstream();
    qdrant = await startFakeQdrant();
    const config = () =>
      testConfig({
        DATABASE_URL: database.url,
        REDIS_URL: url.toString(),
        OPENAI_BASE_URL: upstream.url,
        AUTH_CACHE_TTL_SECONDS: "300",
        MEMORY_DEFAULT_MODE: "off",
        // Replicas share one memory store, as deployed (an embedded store would be each replica's own).
        QDRANT_URL: qdrant.url,
      });
    a = await startTestApp({ db, config: config(), clock: clock.now });
    b = await startTestApp({ db, config: config(), clock: clock.now });
  });

  afterAll(async () => {
    await b.close();
    await a.close();
    await upstream.close();
    await qdrant.close();
    await db.close();
    await database.drop();
  });

  async function caller(email: string) {
    const user = await createUser(db, email, "enterprise");
    const key = (await createApiKey(db, user.id)).key;
    const on = (app: TestApp) => new OpenAI({ apiKey: key, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
    return { userId: user.id, key, on };
  }
  const ask = (client: OpenAI) =>
    client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] });
  const lastKeySent = () => upstream.received.at(-1)?.authorization?.replace(/^Bearer /, "");
  /** Well within the 300 s cache TTL: only the announcement can make the check hold this soon. */
  const soon = (check: () => Promise<boolean>, what: string) => eventually(check, { timeoutMs: 5_000, what });

  test("When a provider key is replaced or removed through one replica, then the other uses the change within moments", async () => {
    const user = await caller(`swap-${randomBytes(3).toString("hex")}@example.com`);
    const api = jsonClient(a.baseUrl);
    const first = `sk-proj-first-${randomBytes(8).toString("hex")}`;
    const second = `sk-proj-second-${randomBytes(8).toString("hex")}`;
    expect(
      (
        await api.call("POST", "/v1/provider-keys/add", {
          token: user.key,
          body: { provider: "openai", api_key: first },
        })
      ).status,
    ).toBe(200);
    await ask(user.on(b));
    expect(lastKeySent()).toBe(first); // b now caches the sealed key for 300 s

    await api.call("POST", "/v1/provider-keys/add", { token: user.key, body: { provider: "openai", api_key: second } });
    await soon(async () => {
      await ask(user.on(b));
      return lastKeySent() === second;
    }, "b to send the new key");

    expect((await api.call("DELETE", "/v1/provider-keys/openai", { token: user.key })).status).toBe(200);
    await soon(async () => {
      const error = await ask(user.on(b)).catch((e: unknown) => e);
      return error instanceof OpenAI.BadRequestError && error.code === "provider_key_missing";
    }, "b to find no provider key");
  });

  test("When an API key is revoked through one replica, then the other refuses it within moments", async () => {
    const user = await caller(`revoke-${randomBytes(3).toString("hex")}@example.com`);
    const created = await jsonClient(a.baseUrl).call("POST", "/v1/api-keys", { token: user.key, body: { name: "ci" } });
    const extra = created.body.key as string;
    const me = (app: TestApp) => jsonClient(app.baseUrl).call("GET", "/v1/me", { token: extra });
    expect((await me(b)).status).toBe(200); // cached on b
    const revoked = await jsonClient(a.baseUrl).call("DELETE", `/v1/api-keys/${created.body.id}`, { token: user.key });
    expect(revoked.status).toBe(200);
    await soon(async () => (await me(b)).status === 401, "b to refuse the revoked key");
  });

  test("When account flows run, then each writes one audit line naming the actor, never a secret", async () => {
    const user = await caller(`audit-${randomBytes(3).toString("hex")}@example.com`);
    const secret = `sk-proj-audit-${randomBytes(8).toString("hex")}`;
    const api = jsonClient(a.baseUrl);
    await api.call("POST", "/v1/provider-keys/add", { token: user.key, body: { provider: "openai", api_key: secret } });
    await api.call("DELETE", "/v1/provider-keys/openai", { token: user.key });
    const audit = a
      .logs()
      .split("\n")
      .filter((l) => l.includes('"audit"') && l.includes(user.userId));
    expect(audit.some((l) => l.includes('"action":"provider_keys.add"') && l.includes('"actor":"user"'))).toBe(true);
    expect(audit.some((l) => l.includes('"action":"provider_keys.remove"'))).toBe(true);
    expect(a.logs()).not.toContain(secret);
  });

  test("When the caller reads their limits, then reading counts nothing and every replica reports the same use", async () => {
    const user = await caller(`limits-${randomBytes(3).toString("hex")}@example.com`);
    await jsonClient(a.baseUrl).call("POST", "/v1/provider-keys/add", {
      token: user.key,
      body: { provider: "openai", api_key: `sk-proj-${randomBytes(8).toString("hex")}` },
    });
    await ask(user.on(a));
    await ask(user.on(b));
    const limits = (app: TestApp) => jsonClient(app.baseUrl).call("GET", "/v1/me/limits", { token: user.key });
    const first = await limits(a);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({
      object: "rate_limits",
      tier: "enterprise",
      requests_per_minute: { used: 2, limit: 1000, remaining: 998 },
      requests_per_day: { used: 2 },
      api_key: null,
    });
    expect(first.body.tokens_per_minute.used).toBeGreaterThan(0);
    expect((await limits(b)).body.requests_per_minute).toEqual(first.body.requests_per_minute);
    expect((await limits(a)).body.requests_per_minute.used).toBe(2);
  });

  test("When a user sets their default memory mode, then their requests follow it on every replica, under the header", async () => {
    const user = await caller(`mode-${randomBytes(3).toString("hex")}@example.com`);
    const api = jsonClient(a.baseUrl);
    await api.call("POST", "/v1/provider-keys/add", {
      token: user.key,
      body: { provider: "openai", api_key: `sk-proj-${randomBytes(8).toString("hex")}` },
    });
    const memoryOf = async (app: TestApp, header?: string) => {
      const { response } = await user
        .on(app)
        .chat.completions.create(
          { model: "gpt-4o", messages: [{ role: "user", content: "hello" }] },
          header ? { headers: { "x-perpetual-memory": header } } : {},
        )
        .withResponse();
      return response.headers.get("x-perpetual-memory");
    };
    expect(await memoryOf(b)).toBe("off"); // MEMORY_DEFAULT_MODE=off here
    const set = await api.call("PATCH", "/v1/me/settings", { token: user.key, body: { memory_mode: "on" } });
    expect(set.body).toMatchObject({ object: "user.settings", memory_mode: "on" });
    expect(await memoryOf(b)).not.toBe("off");
    expect(await memoryOf(b, "off")).toBe("off");
    expect(
      (await api.call("PATCH", "/v1/me/settings", { token: user.key, body: { memory_mode: "sometimes" } })).status,
    ).toBe(400);
    await api.call("PATCH", "/v1/me/settings", { token: user.key, body: { memory_mode: null } });
    expect(await memoryOf(b)).toBe("off");
  });

  test("When users export, then each gets everything of their own and nothing of anyone else's", async () => {
    const ann = await caller(`export-ann-${randomBytes(3).toString("hex")}@example.com`);
    const bob = await caller(`export-bob-${randomBytes(3).toString("hex")}@example.com`);
    const api = jsonClient(a.baseUrl);
    for (const [who, secret] of [
      [ann, `sk-proj-ann-${randomBytes(8).toString("hex")}`],
      [bob, `sk-proj-bob-${randomBytes(8).toString("hex")}`],
    ] as const) {
      await api.call("POST", "/v1/provider-keys/add", {
        token: who.key,
        body: { provider: "openai", api_key: secret },
      });
      const imported = await api.call("POST", "/v1/memories", {
        token: who.key,
        body: { memories: [{ role: "user", text: `a note of ${who.userId}`, conversation_id: "notes" }] },
      });
      expect(imported.status).toBe(202);
      await who
        .on(a)
        .chat.completions.create(
          { model: "gpt-4o", messages: [{ role: "user", content: `question of ${who.userId}` }] },
          { headers: { "x-perpetual-memory": "on" } },
        );
    }
    await a.services.usage.flush();
    const exportOf = () => api.call("GET", "/v1/me/export", { token: ann.key });
    const exported = await exportOf();
    expect(exported.status).toBe(200);
    expect(exported.headers.get("content-disposition")).toContain("attachment");
    const text = JSON.stringify(exported.body);
    expect(text).not.toContain(bob.userId);
    expect(text).not.toContain("sk-proj-");
    expect(exported.body).toMatchObject({
      object: "user.export",
      account: { id: ann.userId },
      provider_keys: [{ provider: "openai" }],
    });
    expect(exported.body.usage.length).toBeGreaterThan(0);
    expect(exported.body.usage[0]).not.toHaveProperty("user_id");
    // The import and the chat's write-back: stored memories, or still on their way (pending), but all there.
    const held = JSON.stringify([exported.body.memories, exported.body.pending_memories]);
    expect(held).toContain(`a note of ${ann.userId}`);
    expect(held).toContain(`question of ${ann.userId}`);
  });
});
