import { type Database, migrate, openPglite } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { startTestApp, type TestApp, testConfig } from "../helpers/app";
import { renderedDom } from "../helpers/chromium";

describe("Status page", () => {
  let db: Database;
  let app: TestApp;

  beforeAll(async () => {
    db = await openPglite();
    await migrate(db);
    app = await startTestApp({ db, config: testConfig({ APP_NAME: "Perpetual Test" }) });
    const user = await createUser(db, "status@example.com", "enterprise");
    const key = (await createApiKey(db, user.id)).key;
    for (let i = 0; i < 3; i++) {
      await fetch(`${app.baseUrl}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }], mock_response: "ok" }),
      });
    }
    await app.services.usage.flush();
  });
  afterAll(async () => {
    await app.close();
    await db.close();
  });

  test("When asked for JSON, then it reports components and today's totals without secrets", async () => {
    const res = await fetch(`${app.baseUrl}/status`, { headers: { accept: "application/json" } });
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      status: "operational",
      components: { api: "operational", database: "operational", vector_db: "operational", redis: "not configured" },
      requests_today: 3,
      active_users_today: 1,
    });
    expect(typeof body.average_latency_ms).toBe("number");
    // Uptime beside today's state: this process has checked since it started; proxy mode has no model backends.
    expect(body.uptime_24h).toMatchObject({ api: 100, database: 100, vector_db: 100, redis: null });
    expect(body.uptime_window_seconds).toBeGreaterThanOrEqual(0);
    expect(body.backends).toEqual([]);
    expect(JSON.stringify(body)).not.toMatch(/sk-|password|@example\.com/);
  });

  test("When Chromium opens /status, then the page renders and its script fills in live values", async () => {
    const dom = await renderedDom(`${app.baseUrl}/status`);
    expect(dom).toContain("<h1>Perpetual Test status</h1>");
    expect(dom).toContain('data-live="true"');
    expect(dom).toMatch(/<td id="requests">3<\/td>/);
    expect(dom).toMatch(/<td id="users">1<\/td>/);
    expect(dom).toMatch(/<td id="database" class="ok">operational<\/td>/);
    expect(dom).toMatch(/<td id="latency">[\d.]+ ms<\/td>/);
  });
});
