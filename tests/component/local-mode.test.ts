import OpenAI from "openai";
import { type Database, migrate, openPglite } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { type FakeOpenAiUpstream, startFakeOpenAiUpstream } from "../fakes/openai-upstream";
import { startTestApp, type TestApp, testConfig } from "../helpers/app";
import { eventually } from "../helpers/eventually";

describe("Local mode with two vLLM-compatible servers", () => {
  let db: Database;
  let first: FakeOpenAiUpstream;
  let second: FakeOpenAiUpstream;
  let app: TestApp;
  let client: OpenAI;

  beforeAll(async () => {
    db = await openPglite();
    await migrate(db);
    first = await startFakeOpenAiUpstream();
    second = await startFakeOpenAiUpstream();
    app = await startTestApp({
      db,
      config: testConfig({
        MODE: "local",
        VLLM_URLS: `${first.url},${second.url}`,
        HEALTH_CHECK_INTERVAL_SECONDS: "1",
        HEALTH_CHECK_FAILURE_THRESHOLD: "2",
        MAX_RETRY_ATTEMPTS: "2",
      }),
    });
    const user = await createUser(db, "local@example.com", "enterprise");
    client = new OpenAI({ apiKey: (await createApiKey(db, user.id)).key, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
  });

  afterAll(async () => {
    await app.close();
    await second.close();
    await db.close();
  });

  test("When the servers are healthy, then requests spread over both without any provider key, and /health lists models", async () => {
    for (let i = 0; i < 6; i++) {
      const completion = await client.chat.completions.create({
        model: "fake-model",
        messages: [{ role: "user", content: `n${i}` }],
      });
      expect(completion.choices[0]?.message.content).toBe(`Echo: n${i}`);
    }
    const chats = (u: FakeOpenAiUpstream) => u.received.filter((r) => r.path.endsWith("/chat/completions")).length;
    expect(chats(first)).toBeGreaterThan(0);
    expect(chats(second)).toBeGreaterThan(0);
    const health = (await (await fetch(`${app.baseUrl}/health`)).json()) as { models_loaded: boolean };
    expect(health.models_loaded).toBe(true);
    const models = [];
    for await (const m of client.models.list()) models.push(m.id);
    expect(models).toEqual(["fake-model"]);
    const missing = await client.chat.completions
      .create({ model: "gpt-4o", messages: [{ role: "user", content: "x" }] })
      .catch((e) => e);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
  });

  test("When one server is killed mid-run, then every request still succeeds and the dead one leaves the rotation", async () => {
    const results: string[] = [];
    for (let i = 0; i < 20; i++) {
      if (i === 5) await first.close();
      const stream = i % 2 === 0;
      if (stream) {
        const s = await client.chat.completions.create({
          model: "fake-model",
          messages: [{ role: "user", content: `s${i}` }],
          stream: true,
        });
        let text = "";
        for await (const chunk of s) text += chunk.choices[0]?.delta.content ?? "";
        results.push(text);
      } else {
        const c = await client.chat.completions.create({
          model: "fake-model",
          messages: [{ role: "user", content: `s${i}` }],
        });
        results.push(c.choices[0]?.message.content ?? "");
      }
    }
    expect(results).toEqual(Array.from({ length: 20 }, (_, i) => `Echo: s${i}`));
    const pool = app.services.pool!;
    // The health checks take the dead server out of the rotation.
    await eventually(() => pool.backends.find((b) => b.url === first.url)?.healthy === false, {
      what: "the dead server marked unhealthy",
    });
    expect(pool.backends.find((b) => b.url === first.url)?.healthy).toBe(false);
    expect(pool.backends.find((b) => b.url === second.url)?.healthy).toBe(true);

    // The status page shows each model server (by position, never its address) beside the components.
    const status = (await (await fetch(`${app.baseUrl}/status.json`)).json()) as {
      status: string;
      backends: { name: string; state: string; models: string[] }[];
      uptime_24h: Record<string, number | null>;
    };
    const firstIndex = pool.backends.findIndex((b) => b.url === first.url);
    expect(status.backends[firstIndex]).toMatchObject({ name: `backend ${firstIndex + 1}`, state: "down" });
    expect(status.backends[1 - firstIndex]).toMatchObject({ state: "operational", models: ["fake-model"] });
    expect(status.status).toBe("degraded");
    expect(status.uptime_24h[`backend ${firstIndex + 1}`]).toBeLessThan(100);
    expect(JSON.stringify(status)).not.toContain(first.url);
  });
});
