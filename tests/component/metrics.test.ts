import { randomBytes } from "node:crypto";
import OpenAI from "openai";
import { type Database, migrate, openPglite } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { type FakeOpenAiUpstream, startFakeOpenAiUpstream } from "../fakes/openai-upstream";
import { startTestApp, type TestApp, testConfig } from "../helpers/app";
import { inThisMinute, TestClock } from "../helpers/clock";
import { eventually } from "../helpers/eventually";

const METRICS_TOKEN = `metrics-${randomBytes(8).toString("hex")}`;

/** The value of one sample in Prometheus' text format, e.g. sample(text, 'perpetual_requests_total{endpoint="/v1/x",status="200"}'). */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("Prometheus metrics after known traffic", () => {
  let db: Database;
  let upstream: FakeOpenAiUpstream;
  let app: TestApp;
  let text: string;

  beforeAll(async () => {
    db = await openPglite();
    await migrate(db);
    upstream = await startFakeOpenAiUpstream();
    // A frozen minute: the 5th request must hit the per-minute limit, whenever the traffic runs.
    app = await startTestApp({
      db,
      config: testConfig({ OPENAI_BASE_URL: upstream.url, METRICS_TOKEN }),
      clock: new TestClock(inThisMinute()).now,
    });
    const user = await createUser(db, "metrics@example.com", "enterprise");
    await app.services.providerKeys.add(user.id, "openai", "sk-proj-metrics-0123456789");
    const client = new OpenAI({
      apiKey: (await createApiKey(db, user.id, { rateLimitPerMinute: 4 })).key,
      baseURL: `${app.baseUrl}/v1`,
      maxRetries: 0,
    });
    await client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "one" }] });
    await client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "two" }] });
    const stream = await client.chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "three" }],
      stream: true,
    });
    for await (const _ of stream);
    await client.chat.completions
      .create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] })
      .catch(() => {});
    await client.chat.completions
      .create({ model: "gpt-4o", messages: [{ role: "user", content: "four" }] })
      .catch(() => {});
    await client.chat.completions
      .create({ model: "gpt-4o", messages: [{ role: "user", content: "five" }] })
      .catch(() => {});
    // Request metrics are observed when each response finishes, which may be just after the client has it.
    const scrape = async () => {
      const res = await fetch(`${app.baseUrl}/prometheus`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
      expect(res.status).toBe(200);
      text = await res.text();
      return (sample(text, 'perpetual_request_duration_seconds_count{endpoint="/v1/chat/completions"}') ?? 0) >= 6;
    };
    await eventually(scrape, { what: "the sixth request's metrics" });
  });

  afterAll(async () => {
    await app.close();
    await upstream.close();
    await db.close();
  });

  test("When scraped, then the seven seed metrics exist with those exact names", () => {
    for (const name of [
      "perpetual_requests_total",
      "perpetual_request_duration_seconds",
      "perpetual_tokens_total",
      "perpetual_retrievals_total",
      "perpetual_retrieval_duration_seconds",
      "perpetual_errors_total",
      "perpetual_cost_usd_total",
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
  });

  test("When four completions succeeded, one model was unknown and one request was limited, then the counters say so", () => {
    expect(sample(text, 'perpetual_requests_total{endpoint="/v1/chat/completions",status="200"}')).toBe(4);
    expect(sample(text, 'perpetual_requests_total{endpoint="/v1/chat/completions",status="404"}')).toBe(1);
    expect(sample(text, 'perpetual_requests_total{endpoint="/v1/chat/completions",status="429"}')).toBe(1);
    expect(sample(text, 'perpetual_errors_total{endpoint="/v1/chat/completions",type="invalid_request_error"}')).toBe(
      1,
    );
    expect(sample(text, 'perpetual_errors_total{endpoint="/v1/chat/completions",type="requests"}')).toBe(1);
    expect(sample(text, 'perpetual_rate_limit_rejections_total{limit="key_requests_per_minute"}')).toBe(1);
    expect(sample(text, 'perpetual_request_duration_seconds_count{endpoint="/v1/chat/completions"}')).toBe(6);
  });

  test("When the provider reported 11 prompt (3 cached) and 7 completion tokens per call, then tokens and cost add up", () => {
    expect(sample(text, 'perpetual_tokens_total{type="prompt",model="gpt-4o"}')).toBe(44);
    expect(sample(text, 'perpetual_tokens_total{type="completion",model="gpt-4o"}')).toBe(28);
    expect(sample(text, 'perpetual_tokens_total{type="cached",model="gpt-4o"}')).toBe(12);
    expect(sample(text, 'perpetual_cost_usd_total{model="gpt-4o"}')).toBeCloseTo(
      (4 * (8 * 2.5 + 3 * 1.25 + 7 * 10)) / 1e6,
      10,
    );
    expect(sample(text, 'perpetual_upstream_duration_seconds_count{provider="openai"}')).toBe(4);
    expect(sample(text, 'perpetual_time_to_first_token_seconds_count{provider="openai"}')).toBe(1);
    // Each completion recalled memory once (4 chat calls).
    expect(sample(text, "perpetual_retrievals_total")).toBe(4);
    expect(sample(text, "perpetual_retrieval_duration_seconds_count")).toBe(4);
    expect(sample(text, "perpetual_in_flight_requests")).toBe(1); // the scrape itself
  });

  test("When the metrics token is missing or wrong, then /metrics is refused", async () => {
    expect((await fetch(`${app.baseUrl}/metrics`)).status).toBe(401);
    expect((await fetch(`${app.baseUrl}/metrics`, { headers: { authorization: "Bearer nope" } })).status).toBe(401);
    expect(
      (await fetch(`${app.baseUrl}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).status,
    ).toBe(200);
  });
});
