/**
 * Generated bad input against every route of the running server (fast-check): malformed paths and percent
 * escapes, bodies that are not JSON or not the schema, NUL bytes and lone surrogates, wrong content types and
 * credentials. Nothing may answer 5xx; every error is OpenAI-shaped (Anthropic-shaped under /v1/messages) with
 * an x-request-id; the process stays up and its memory bounded.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { type Database, migrate, openPostgres } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { type FakeAnthropicUpstream, startFakeAnthropicUpstream } from "../fakes/anthropic-upstream";
import { type FakeOpenAiUpstream, startFakeOpenAiUpstream } from "../fakes/openai-upstream";
import { createTestDatabase } from "../helpers/postgres";
import { type ServerProcess, startServerProcess } from "../helpers/processes";

jest.setTimeout(300_000);

const RUNS = 2_000;
const ADMIN_KEY = randomBytes(24).toString("hex");

interface Operation {
  method: string;
  path: string;
}

const nasty = fc.constantFrom(
  "\u0000",
  "\ud800",
  "\udc00x",
  "%",
  "%E0%A4%A",
  "%00",
  "%2F..%2F",
  "💥",
  "'; drop table users; --",
  "x".repeat(5_000),
);
const text = fc.oneof(fc.string(), fc.string({ unit: "binary" }), nasty);

/** A path parameter as it goes on the wire: sometimes raw and malformed, usually percent-encoded. */
const pathParam = fc.oneof(
  fc.constantFrom("%", "%E0%A4%A", "%zz", "%%", "..", "%00"),
  fc.uuid().map(String),
  // encodeURIComponent refuses lone surrogates; fetch would replace them anyway.
  text.map((t) => encodeURIComponent(t.replace(/[\uD800-\uDFFF]/g, "\uFFFD"))),
);

const chatLike = fc.record(
  {
    model: fc.oneof(fc.constantFrom("gpt-4o", "claude-3-5-sonnet-latest", "openai/gpt-4o-mini"), text, fc.integer()),
    messages: fc.oneof(
      fc.array(
        fc.record({
          role: fc.oneof(fc.constantFrom("user", "system", "assistant", "tool", "developer"), text),
          content: fc.oneof(
            text,
            fc.array(fc.record({ type: fc.constantFrom("text", "image_url"), text })),
            fc.anything(),
          ),
        }),
        { maxLength: 4 },
      ),
      fc.anything(),
    ),
    mock_response: text,
    stream: fc.boolean(),
    max_tokens: fc.oneof(fc.integer(), text),
    temperature: fc.oneof(fc.double(), text),
    input: fc.oneof(text, fc.array(text, { maxLength: 3 })),
    query: text,
    provider: fc.oneof(fc.constantFrom("openai", "anthropic"), text),
    api_key: text,
    name: text,
    tier: fc.oneof(fc.constantFrom("free", "pro", "enterprise"), text),
    email: text,
  },
  { requiredKeys: [] },
);

const body = fc.oneof(
  chatLike.map((b) => ({ kind: "json" as const, text: JSON.stringify(b) })),
  fc.anything().map((v) => ({ kind: "json" as const, text: JSON.stringify(v) ?? "null" })),
  fc.string().map((t) => ({ kind: "json" as const, text: t })), // usually not JSON at all
  fc.constantFrom('{"a":', "[", '{"model": "gpt-4o", "messages": [', "\u0000").map((t) => ({ kind: "json", text: t })),
  text.map((t) => ({ kind: "text" as const, text: t })),
  fc.constant({ kind: "none" as const, text: "" }),
);

describe("Generated bad requests across every route", () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;
  let server: ServerProcess;
  let operations: Operation[];
  let userKey: string;
  let openai: FakeOpenAiUpstream;
  let anthropic: FakeAnthropicUpstream;

  beforeAll(async () => {
    // A generated body can store a provider key for openai or anthropic (POST /v1/provider-keys/add accepts any
    // printable key): later calls then reach that provider. Here it is a local fake that answers as the provider
    // would; with no network, the real host would be unreachable, and a 502 would be the right answer to that.
    openai = await startFakeOpenAiUpstream({ record: false });
    anthropic = await startFakeAnthropicUpstream();
    database = await createTestDatabase();
    db = openPostgres({ url: database.url, poolSize: 2 });
    await migrate(db);
    const user = await createUser(db, `fuzz-${randomBytes(4).toString("hex")}@example.com`, "enterprise");
    userKey = (await createApiKey(db, user.id)).key;
    server = await startServerProcess({
      DATABASE_URL: database.url,
      DATA_DIR: mkdtempSync(join(tmpdir(), "fuzz-")),
      ADMIN_API_KEY: ADMIN_KEY,
      API_KEY_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
      OPENAI_BASE_URL: openai.url,
      ANTHROPIC_BASE_URL: anthropic.url,
    });
    const document = (await (await fetch(`${server.base}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    operations = Object.entries(document.paths).flatMap(([path, methods]) =>
      Object.keys(methods)
        .filter((m) => ["get", "post", "put", "patch", "delete"].includes(m))
        .map((method) => ({ method: method.toUpperCase(), path })),
    );
    operations.push({ method: "GET", path: "/v1/{unknown}" }, { method: "POST", path: "/v1/messages/{unknown}" });
  });

  afterAll(async () => {
    server.child.kill("SIGTERM");
    await server.finished;
    await db.close();
    await database.drop();
    await Promise.all([openai.close(), anthropic.close()]);
  });

  test(`When ${RUNS} generated bad requests arrive, then none answers 5xx and every error has the API's shape`, async () => {
    expect(operations.length).toBeGreaterThan(20);
    const statuses = new Map<number, number>();
    let sent = 0;
    let rssAfterWarmUp = 0;
    const request = fc.record({
      operation: fc.constantFrom(...operations),
      params: fc.array(pathParam, { minLength: 4, maxLength: 4 }),
      query: fc.option(fc.dictionary(fc.string({ maxLength: 8 }), text, { maxKeys: 3 }), { nil: undefined }),
      auth: fc.constantFrom("user", "admin", "garbage", "none"),
      body,
    });
    await fc.assert(
      fc.asyncProperty(request, async ({ operation, params, query, auth, body }) => {
        // The user's own erasure would end the run's valid credential: it is fuzzed with other credentials only.
        if (operation.method === "DELETE" && operation.path === "/v1/me" && auth === "user") auth = "garbage";
        let i = 0;
        let path = operation.path.replace(/\{[^}]+\}/g, () => params[i++ % params.length]!);
        if (query) {
          const search = new URLSearchParams();
          for (const [k, v] of Object.entries(query)) search.append(k, v);
          path += `?${search}`;
        }
        const headers: Record<string, string> = {};
        const token = { user: userKey, admin: ADMIN_KEY, garbage: "sk-perp-garbage", none: "" }[auth];
        if (token) headers.authorization = `Bearer ${token}`;
        if (body.kind === "json") headers["content-type"] = "application/json";
        if (body.kind === "text") headers["content-type"] = "text/plain";
        const hasBody = body.kind !== "none" && operation.method !== "GET";
        const url = new URL(`${server.base}${path}`); // as fetch sends it: "/v1/messages/.." is "/v1/"
        const res = await fetch(url, {
          method: operation.method,
          headers,
          body: hasBody ? body.text : undefined,
        });
        const payload = await res.text();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (++sent === 100) rssAfterWarmUp = server.rss();
        expect(res.status).toBeLessThan(500);
        expect(res.headers.get("x-request-id")).toBeTruthy();
        if (res.status >= 400) {
          const error = JSON.parse(payload) as Record<string, unknown>;
          if (url.pathname === "/v1/messages" || url.pathname.startsWith("/v1/messages/")) {
            expect(error).toMatchObject({
              type: "error",
              error: { type: expect.any(String), message: expect.any(String) },
            });
          } else {
            expect(error.error).toMatchObject({ message: expect.any(String), type: expect.any(String) });
            expect(error.error).toHaveProperty("code");
            expect(error.error).toHaveProperty("param");
          }
        }
      }),
      { numRuns: RUNS, endOnFailure: true },
    );
    const rss = server.rss();
    process.stderr.write(
      `[fault suite] fuzz: ${JSON.stringify({
        requests: sent,
        operations: operations.length,
        rss_mb_after_100: Math.round(rssAfterWarmUp / 2 ** 20),
        rss_mb_end: Math.round(rss / 2 ** 20),
        ...Object.fromEntries([...statuses].map(([s, n]) => [`status_${s}`, n])),
      })}\n`,
    );
    expect(sent).toBeGreaterThanOrEqual(RUNS);
    expect(server.child.exitCode).toBeNull();
    expect((await fetch(`${server.base}/health`)).status).toBe(200);
    expect(rss).toBeLessThan(rssAfterWarmUp + 200 * 2 ** 20);
  });
});
