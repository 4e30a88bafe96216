import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import OpenAI from "openai";
import { type Database, migrate, openPostgres } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { type FakeOpenAiUpstream, startFakeOpenAiUpstream } from "../fakes/openai-upstream";
import { startTestApp, type TestApp, testConfig } from "../helpers/app";
import { jsonClient } from "../helpers/http";
import { createTestDatabase } from "../helpers/postgres";

/**
 * The account use cases (src/app) own their cross-replica announcement: a change made through one replica is in
 * force on every other at once, not after AUTH_CACHE_TTL_SECONDS (set long here so only the announcement can do it).
 */
describe("Use cases across replicas sharing Redis, on PostgreSQL 15", () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;
  let upstream: FakeOpenAiUpstream;
  let a: TestApp;
  let b: TestApp;

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
    const config = () =>
      testConfig({
        DATABASE_URL: database.url,
        REDIS_URL: url.toString(),
        OPENAI_BASE_URL: upstream.url,
        AUTH_CACHE_TTL_SECONDS: "300",
        MEMORY_DEFAULT_MODE: "off",
      });
    a = await startTestApp({ db, config: config() });
    b = await startTestApp({ db, config: config() });
  });

  afterAll(async () => {
    await b.close();
    await a.close();
    await upstream.close();
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

  test("When a provider key is replaced or removed through one replica, then the other uses the change at once", async () => {
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
    await ask(user.on(b));
    expect(lastKeySent()).toBe(second);

    expect((await api.call("DELETE", "/v1/provider-keys/openai", { token: user.key })).status).toBe(200);
    const error = await ask(user.on(b)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).code).toBe("provider_key_missing");
  });

  test("When an API key is revoked through one replica, then the other refuses it at once", async () => {
    const user = await caller(`revoke-${randomBytes(3).toString("hex")}@example.com`);
    const created = await jsonClient(a.baseUrl).call("POST", "/v1/api-keys", { token: user.key, body: { name: "ci" } });
    const extra = created.body.key as string;
    const me = (app: TestApp) => jsonClient(app.baseUrl).call("GET", "/v1/me", { token: extra });
    expect((await me(b)).status).toBe(200); // cached on b
    const revoked = await jsonClient(a.baseUrl).call("DELETE", `/v1/api-keys/${created.body.id}`, { token: user.key });
    expect(revoked.status).toBe(200);
    expect((await me(b)).status).toBe(401);
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
});
