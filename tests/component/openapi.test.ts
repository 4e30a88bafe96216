import { randomBytes } from "node:crypto";
import { Validator } from "@seriousme/openapi-schema-validator";
import { type Database, migrate, openPglite } from "../../src/db";
import { type FakeOpenAiUpstream, startFakeOpenAiUpstream } from "../fakes/openai-upstream";
import { startTestApp, type TestApp, testConfig } from "../helpers/app";
import { renderedDom } from "../helpers/chromium";
import { OpenApiConformance } from "../helpers/openapi-conformance";

// biome-ignore lint/suspicious/noExplicitAny: response bodies are read loosely; the document check is the strict part
type Json = any;
type Document = ConstructorParameters<typeof OpenApiConformance>[0] & Record<string, unknown>;

const ADMIN_KEY = randomBytes(24).toString("hex");
const ZERO_ID = "00000000-0000-4000-8000-000000000000";

describe("OpenAPI document at /openapi.json and docs at /docs", () => {
  let db: Database;
  let upstream: FakeOpenAiUpstream;
  let app: TestApp;
  let document: Document;
  let conformance: OpenApiConformance;
  const problems: string[] = [];

  /** Calls the API and records every way the response departs from the document. */
  async function call(method: string, template: string, options: { key?: string; body?: unknown; path?: string } = {}) {
    const res = await fetch(`${app.baseUrl}${options.path ?? template}`, {
      method: method.toUpperCase(),
      headers: {
        ...(options.key && { authorization: `Bearer ${options.key}` }),
        ...(options.body !== undefined && { "content-type": "application/json" }),
      },
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
    const contentType = res.headers.get("content-type") ?? "";
    const text = await res.text();
    expect(res.headers.get("x-request-id")).toMatch(/^req_/);
    if (contentType.startsWith("application/json")) {
      const body = JSON.parse(text) as Record<string, unknown>;
      problems.push(...conformance.problems(method, template, res.status, contentType, body));
      return { status: res.status, body: body as Json };
    }
    if (contentType.startsWith("text/event-stream")) {
      const events = text
        .split("\n")
        .filter((line) => line.startsWith("data: ") && line !== "data: [DONE]")
        .map((line) => JSON.parse(line.slice(6)) as unknown);
      expect(events.length).toBeGreaterThan(0);
      for (const event of events)
        problems.push(...conformance.problems(method, template, res.status, contentType, event));
      return { status: res.status, body: {} as Json };
    }
    problems.push(...conformance.problems(method, template, res.status, contentType, text));
    return { status: res.status, body: {} as Json };
  }

  beforeAll(async () => {
    db = await openPglite();
    await migrate(db);
    upstream = await startFakeOpenAiUpstream();
    app = await startTestApp({
      db,
      config: testConfig({
        ADMIN_API_KEY: ADMIN_KEY,
        OPENAI_BASE_URL: upstream.url,
        POLAR_WEBHOOK_SECRET: "whsec-openapi-test",
      }),
    });
    document = (await (await fetch(`${app.baseUrl}/openapi.json`)).json()) as Document;
    conformance = new OpenApiConformance(document);
  });

  afterAll(async () => {
    await app.close();
    await upstream.close();
    await db.close();
  });

  beforeEach(() => {
    problems.length = 0;
  });

  test("When /openapi.json is fetched, then it is a valid OpenAPI 3.1 document", async () => {
    const result = await new Validator().validate(document as Parameters<Validator["validate"]>[0]);
    expect(result).toEqual({ valid: true });
    expect(document.openapi).toBe("3.1.0");
  });

  test("When the document is read, then every public endpoint is in it with its schemas", () => {
    const operations = Object.entries(document.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(operations).toEqual(
      expect.arrayContaining([
        "POST /v1/chat/completions",
        "POST /v1/embeddings",
        "GET /v1/models",
        "GET /v1/models/{model}",
        "POST /v1/messages",
        "GET /v1/me",
        "DELETE /v1/me",
        "POST /v1/api-keys",
        "GET /v1/api-keys",
        "DELETE /v1/api-keys/{id}",
        "POST /v1/provider-keys/add",
        "GET /v1/provider-keys",
        "DELETE /v1/provider-keys/{provider}",
        "GET /health",
        "GET /ready",
        "GET /status",
        "GET /metrics",
        "GET /prometheus",
        "POST /admin/users",
        "PATCH /admin/users/{id}",
        "GET /admin/stats",
      ]),
    );
    const chat = document.paths["/v1/chat/completions"]!.post as Json;
    expect(chat.requestBody.content["application/json"].schema).toEqual({
      $ref: "#/components/schemas/ChatCompletionRequest",
    });
    const request = (document.components as Json).schemas.ChatCompletionRequest;
    expect(request.required).toEqual(["model", "messages"]);
    expect(request.properties.temperature.anyOf[0]).toMatchObject({ type: "number", minimum: 0, maximum: 2 });
    expect(Object.keys(chat.responses["200"].content)).toEqual(["application/json", "text/event-stream"]);
    expect(chat.responses["200"].headers).toHaveProperty("x-ratelimit-remaining-tokens");
    expect(chat.responses["429"].headers).toHaveProperty("retry-after-ms");
    const listUsers = document.paths["/admin/users"]!.get as Json;
    expect(listUsers.parameters.map((p: { name: string }) => p.name)).toEqual(["limit", "offset"]);
  });

  test("When every documented operation is called without credentials, then each answer is documented", async () => {
    for (const [template, methods] of Object.entries(document.paths)) {
      for (const method of Object.keys(methods)) {
        const path = template.replace("{id}", ZERO_ID).replace("{model}", "gpt-4o").replace("{provider}", "openai");
        const body = method === "post" || method === "patch" ? {} : undefined;
        const { status } = await call(method, template, { path, body });
        const security = (methods as Json)[method].security as Record<string, unknown>[];
        // A signed webhook without a signature is forbidden (403); other credentials are missing (401).
        const expected = security.length === 0 ? 200 : "webhookSignature" in security[0]! ? 403 : 401;
        if (status !== expected) problems.push(`${method} ${path}: ${status}`);
      }
    }
    expect(problems).toEqual([]);
  });

  test("When the API is used for real, then every response matches the document", async () => {
    const admin = ADMIN_KEY;
    const created = await call("post", "/admin/users", { key: admin, body: { email: "doc@example.com", tier: "pro" } });
    expect(created.status).toBe(201);
    const userId = created.body.id as string;
    const key = created.body.api_key.key as string;
    await call("get", "/admin/users", { key: admin, path: "/admin/users?limit=5&offset=0" });
    expect((await call("get", "/admin/users", { key: admin, path: "/admin/users?limit=0" })).status).toBe(400);
    await call("patch", "/admin/users/{id}", {
      key: admin,
      path: `/admin/users/${userId}`,
      body: { tier: "enterprise" },
    });
    const adminKey = await call("post", "/admin/users/{id}/api-keys", {
      key: admin,
      path: `/admin/users/${userId}/api-keys`,
      body: { name: "ci", rate_limit_per_minute: 100 },
    });
    await call("get", "/admin/users/{id}/api-keys", { key: admin, path: `/admin/users/${userId}/api-keys` });
    await call("delete", "/admin/api-keys/{id}", { key: admin, path: `/admin/api-keys/${adminKey.body.id}` });
    await call("get", "/admin/stats", { key: admin });
    expect((await call("post", "/admin/users", { key: admin, body: { email: "doc@example.com" } })).status).toBe(409);

    await call("get", "/v1/me", { key });
    const second = await call("post", "/v1/api-keys", { key, body: { name: "second" } });
    await call("get", "/v1/api-keys", { key });
    await call("delete", "/v1/api-keys/{id}", { key, path: `/v1/api-keys/${second.body.id}` });
    expect((await call("delete", "/v1/api-keys/{id}", { key, path: "/v1/api-keys/nope" })).status).toBe(404);
    await call("post", "/v1/provider-keys/add", {
      key,
      body: { provider: "openai", api_key: "sk-proj-documented-key" },
    });
    await call("get", "/v1/provider-keys", { key });

    const messages = [{ role: "user", content: "hello docs" }];
    expect((await call("post", "/v1/chat/completions", { key, body: { model: "gpt-4o", messages } })).status).toBe(200);
    await call("post", "/v1/chat/completions", { key, body: { model: "gpt-4o", messages, stream: true } });
    await call("post", "/v1/chat/completions", { key, body: { model: "gpt-4o", messages, mock_response: "mocked" } });
    expect((await call("post", "/v1/chat/completions", { key, body: { model: "gpt-4o" } })).status).toBe(400);
    expect(
      (await call("post", "/v1/chat/completions", { key, body: { model: "openai/fail-500", messages } })).status,
    ).toBe(502);
    await call("post", "/v1/embeddings", { key, body: { model: "text-embedding-3-small", input: "hello" } });
    await call("get", "/v1/models", { key });
    await call("get", "/v1/models/{model}", { key, path: "/v1/models/gpt-4o" });
    await call("get", "/v1/models/{model}", { key, path: "/v1/models/unknown-model" });
    await call("post", "/v1/messages", { key, body: { model: "gpt-4o", max_tokens: 50, messages } });
    await call("post", "/v1/messages", { key, body: { model: "gpt-4o", max_tokens: 50, messages, stream: true } });
    expect((await call("post", "/v1/messages", { key, body: { model: "gpt-4o", messages } })).status).toBe(400);

    for (const path of ["/health", "/ready", "/status.json", "/status", "/metrics", "/prometheus"])
      await call("get", path);
    await call("delete", "/v1/provider-keys/{provider}", { key, path: "/v1/provider-keys/openai" });
    await call("delete", "/v1/provider-keys/{provider}", { key, path: "/v1/provider-keys/openai" });
    await call("delete", "/v1/me", { key });
    expect(problems).toEqual([]);
  });

  test("When Chromium opens /docs, then Swagger UI renders the operations from /openapi.json", async () => {
    const dom = await renderedDom(`${app.baseUrl}/docs`, 10_000);
    expect(dom).toContain("swagger-ui");
    expect(dom).toContain("/v1/chat/completions");
    expect(dom).toContain("/v1/provider-keys/add");
    expect(dom).toMatch(/Perpetual[^<]* API/);
  });
});
