import { randomBytes } from "node:crypto";
import OpenAI from "openai";
import { type Database, migrate, openPostgres } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { type FakeOpenAiUpstream, startFakeOpenAiUpstream } from "../fakes/openai-upstream";
import { type FakeCollector, startFakeCollector } from "../fakes/otlp-collector";
import { createTestDatabase } from "../helpers/postgres";
import { collect, spawnEntry, waitForOutput } from "../helpers/processes";

const SERVER = 2;
const CLIENT = 3;

describe("OpenTelemetry tracing (OTEL_EXPORTER_OTLP_ENDPOINT set) in the real server process", () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;
  let upstream: FakeOpenAiUpstream;
  let collector: FakeCollector;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = openPostgres({ url: database.url, poolSize: 2 });
    await migrate(db);
    upstream = await startFakeOpenAiUpstream();
    collector = await startFakeCollector();
  });

  afterAll(async () => {
    await collector.close();
    await upstream.close();
    await db.close();
    await database.drop();
  });

  test("When a chat completion is proxied, then one trace holds the HTTP, Express, PostgreSQL, Redis and provider spans", async () => {
    const redisUrl = process.env.TEST_REDIS_URL;
    if (!redisUrl) throw new Error("TEST_REDIS_URL is not set: run the tests with `npm test`, which starts Redis");
    const user = await createUser(db, "traced@example.com", "enterprise");
    const apiKey = (await createApiKey(db, user.id)).key;
    const providerKey = `sk-proj-${randomBytes(16).toString("hex")}`;

    const server = spawnEntry("src/main.ts", [], {
      DATABASE_URL: database.url,
      REDIS_URL: redisUrl,
      OPENAI_BASE_URL: upstream.url,
      API_KEY_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
      API_PORT: "0",
      API_HOST: "127.0.0.1",
      LOG_FORMAT: "json",
      NODE_ENV: "production",
      MEMORY_STORE: "embedded",
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
      OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20collector-secret",
      OTEL_SERVICE_NAME: "perpetual-test",
    });
    const { output, finished } = collect(server);
    const [, port] = await waitForOutput(output, /"url":"http:\/\/127\.0\.0\.1:(\d+)"/);
    const base = `http://127.0.0.1:${port}`;

    const added = await fetch(`${base}/v1/provider-keys/add`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ provider: "openai", api_key: providerKey }),
    });
    expect(added.status).toBe(200);
    const client = new OpenAI({ apiKey, baseURL: `${base}/v1`, maxRetries: 0 });
    const completion = await client.chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "trace me" }],
    });
    expect(completion.choices[0]!.message.content).toContain("trace me");
    await fetch(`${base}/health`);

    server.kill("SIGTERM"); // shutdown flushes the buffered spans
    expect((await finished).code).toBe(0);

    const spans = collector.spans;
    expect(collector.exportHeaders[0]!.authorization).toBe("Bearer collector-secret");
    expect(new Set(spans.map((s) => s.serviceName))).toEqual(new Set(["perpetual-test"]));

    const incoming = spans.find((s) => s.kind === SERVER && s.attributes["http.route"] === "/v1/chat/completions");
    expect(incoming).toBeDefined();
    const trace = spans.filter((s) => s.traceId === incoming!.traceId);

    const providerCall = trace.find(
      (s) => s.kind === CLIENT && String(s.attributes["url.full"]).startsWith(upstream.url),
    );
    expect(providerCall).toBeDefined();
    // The provider received the trace context: its side of the call joins the same trace.
    const received = upstream.received.find((r) => r.path.endsWith("/chat/completions"))!;
    expect(received.traceparent).toMatch(new RegExp(`^00-${incoming!.traceId}-${providerCall!.spanId}-0[01]$`));

    expect(trace.some((s) => s.attributes["db.system"] === "redis" || s.attributes["db.system.name"] === "redis")).toBe(
      true,
    );
    expect(
      spans.some((s) => s.attributes["db.system"] === "postgresql" || s.attributes["db.system.name"] === "postgresql"),
    ).toBe(true);
    expect(trace.some((s) => s.attributes["express.type"] === "request_handler")).toBe(true);

    // Probes are not traced, and no credential reaches the collector.
    expect(
      spans.some(
        (s) =>
          s.kind === SERVER && String(s.attributes["url.path"] ?? s.attributes["http.target"]).startsWith("/health"),
      ),
    ).toBe(false);
    const exported = JSON.stringify(spans);
    for (const secret of [apiKey, providerKey, apiKey.slice(-12), providerKey.slice(-12)]) {
      expect(exported).not.toContain(secret);
    }
  });

  test("When OTEL_EXPORTER_OTLP_ENDPOINT is empty, then tracing stays off and the server starts without it", async () => {
    const server = spawnEntry("src/main.ts", [], {
      DATABASE_URL: database.url,
      API_PORT: "0",
      API_HOST: "127.0.0.1",
      LOG_FORMAT: "json",
      NODE_ENV: "production",
      MEMORY_STORE: "embedded",
      RATE_LIMIT_STORE: "memory",
      API_KEY_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
      OTEL_EXPORTER_OTLP_ENDPOINT: "",
    });
    const { output, finished } = collect(server);
    await waitForOutput(output, /"tracing":"off"/);
    server.kill("SIGTERM");
    expect((await finished).code).toBe(0);
  });
});
