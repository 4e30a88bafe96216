import OpenAI from "openai";
import { type Database, migrate, openPglite } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { startTestApp, type TestApp, testConfig } from "../helpers/app";

const ADMIN_KEY = "admin-key-for-the-http-shell-tests-0123456789";

function expectOpenAiError(body: unknown, status: { type: string; code: string | null }) {
  expect(body).toEqual({
    error: { message: expect.any(String), type: status.type, param: null, code: status.code },
  });
}

describe("HTTP shell", () => {
  let db: Database;
  let app: TestApp;

  beforeAll(async () => {
    db = await openPglite();
    await migrate(db);
    app = await startTestApp({ db, config: testConfig({ MAX_REQUEST_BODY_SIZE: "2kb", ADMIN_API_KEY: ADMIN_KEY }) });
  });
  afterAll(async () => {
    await app.close();
    await db.close();
  });

  test("When the body is malformed JSON, then 400 invalid_json comes back OpenAI-shaped with a request id", async () => {
    const res = await fetch(`${app.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"model": "gpt-4o", "messages": [',
    });
    expect(res.status).toBe(400);
    expect(res.headers.get("x-request-id")).toMatch(/^req_[0-9a-f]{32}$/);
    expect(res.headers.get("content-type")).toMatch(/application\/json/);
    expectOpenAiError(await res.json(), { type: "invalid_request_error", code: "invalid_json" });
  });

  test("When the route does not exist, then 404 unknown_url names the method and path", async () => {
    const res = await fetch(`${app.baseUrl}/v1/nope`, { headers: { "x-request-id": "client-trace-42" } });
    expect(res.status).toBe(404);
    expect(res.headers.get("x-request-id")).toBe("client-trace-42");
    const body = (await res.json()) as { error: { message: string } };
    expectOpenAiError(body, { type: "invalid_request_error", code: "unknown_url" });
    expect(body.error.message).toBe("Invalid URL (GET /v1/nope)");
  });

  test.each([
    ["DELETE", "/v1/memories/%"],
    ["DELETE", "/v1/api-keys/%"],
    ["DELETE", "/v1/provider-keys/%"],
    ["GET", "/v1/models/%"],
    ["PATCH", "/admin/users/%"],
  ])("When %s %s has an undecodable parameter, then 400 invalid_path, not 500", async (method, path) => {
    const user = await createUser(db, `paths-${Math.random()}@example.com`, "free");
    const token = path.startsWith("/admin") ? ADMIN_KEY : (await createApiKey(db, user.id)).key;
    const res = await fetch(`${app.baseUrl}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(400);
    expectOpenAiError(await res.json(), { type: "invalid_request_error", code: "invalid_path" });
  });

  test("When a request under /v1/messages fails before its handler, then the error is Anthropic-shaped", async () => {
    const malformed = await fetch(`${app.baseUrl}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{",
    });
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toEqual({
      type: "error",
      error: { type: "invalid_request_error", message: expect.any(String) },
    });
    const unknown = await fetch(`${app.baseUrl}/v1/messages/batches`, { method: "POST" });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ type: "error", error: { type: "not_found_error" } });
  });

  test("When the body exceeds MAX_REQUEST_BODY_SIZE, then 413 request_too_large", async () => {
    const res = await fetch(`${app.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "x".repeat(4096) }] }),
    });
    expect(res.status).toBe(413);
    expect(res.headers.get("x-request-id")).toBeTruthy();
    expectOpenAiError(await res.json(), { type: "invalid_request_error", code: "request_too_large" });
  });

  test("When the caller's x-request-id is not a plain token, then a fresh one replaces it", async () => {
    const res = await fetch(`${app.baseUrl}/health`, { headers: { "x-request-id": "<script>alert(1)</script>" } });
    expect(res.headers.get("x-request-id")).toMatch(/^req_/);
  });

  test("When the official openai SDK gets our error, then it reads status, code and request id", async () => {
    const client = new OpenAI({ apiKey: "sk-perp-test", baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
    const error = await client.files.list().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    const apiError = error as InstanceType<typeof OpenAI.NotFoundError>;
    expect(apiError.status).toBe(404);
    expect(apiError.code).toBe("unknown_url");
    expect(apiError.type).toBe("invalid_request_error");
    expect(apiError.requestID).toMatch(/^req_/);
  });

  test("When /health is called, then it reports the seed's fields with their real state", async () => {
    const res = await fetch(`${app.baseUrl}/health`);
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toEqual({
      status: "healthy",
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
      uptime_seconds: expect.any(Number),
      models_loaded: false,
      vector_db_connected: true,
    });
  });

  test("When the database is migrated and reachable, then /ready is 200", async () => {
    const res = await fetch(`${app.baseUrl}/ready`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ready", database: "ok" });
  });

  test("When requests are served, then each gets one log line with method, path, status, latency and request id", async () => {
    await fetch(`${app.baseUrl}/health`, { headers: { "x-request-id": "log-line-check" } });
    const lines = app
      .logs()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((entry) => entry.client_request_id === "log-line-check" && entry.message === "request");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ method: "GET", path: "/health", status: 200, level: "info" });
    expect(typeof lines[0]!.latency_ms).toBe("number");
    expect(lines[0]!.request_id).toMatch(/^req_[0-9a-f]{32}$/);
  });
});

describe("Readiness", () => {
  test("When migrations are pending, then /ready is 503 until they are applied", async () => {
    const db = await openPglite();
    const app = await startTestApp({ db });
    try {
      const before = await fetch(`${app.baseUrl}/ready`);
      expect(before.status).toBe(503);
      expect(await before.json()).toEqual({ status: "unavailable", database: "migrations pending" });
      await migrate(db);
      expect((await fetch(`${app.baseUrl}/ready`)).status).toBe(200);
    } finally {
      await app.close();
      await db.close();
    }
  });

  test("When the database is unreachable, then /ready is 503 and /health still answers", async () => {
    const db = await openPglite();
    await migrate(db);
    const app = await startTestApp({ db });
    try {
      expect((await fetch(`${app.baseUrl}/ready`)).status).toBe(200);
      await db.close();
      const res = await fetch(`${app.baseUrl}/ready`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({ status: "unavailable", database: "unreachable" });
      expect((await fetch(`${app.baseUrl}/health`)).status).toBe(200);
    } finally {
      await app.close();
    }
  });
});

describe("Database outage on an authenticated route", () => {
  test("When the database is gone, then an API request gets 503 service_unavailable, not 500", async () => {
    const db = await openPglite();
    await migrate(db);
    const app = await startTestApp({ db, config: testConfig({ AUTH_CACHE_TTL_SECONDS: "0" }) });
    try {
      await db.close();
      const res = await fetch(`${app.baseUrl}/v1/me`, {
        headers: { authorization: `Bearer sk-perp-${"B".repeat(40)}` },
      });
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("service_unavailable");
    } finally {
      await app.close();
    }
  });
});
