import { randomBytes } from "node:crypto";
import OpenAI from "openai";
import { type Database, migrate, openPostgres } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { type FakeOpenAiUpstream, startFakeOpenAiUpstream } from "../fakes/openai-upstream";
import { startTestApp, type TestApp, testConfig, usageRowOf } from "../helpers/app";
import { createTestDatabase } from "../helpers/postgres";

describe("The per-user response cache, with the official openai SDK, on PostgreSQL 15", () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;
  let upstream: FakeOpenAiUpstream;
  let app: TestApp;

  async function newClient(email: string) {
    const user = await createUser(db, email, "enterprise");
    await app.services.providerKeys.add(user.id, "openai", `sk-proj-${randomBytes(16).toString("hex")}`);
    const key = (await createApiKey(db, user.id)).key;
    return { key, client: new OpenAI({ apiKey: key, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 }) };
  }

  const exact = { headers: { "x-perpetual-cache": "exact" } };
  const semantic = { headers: { "x-perpetual-cache": "semantic" } };
  const ask = (content: string, extra: Record<string, unknown> = {}) => ({
    model: "gpt-4o",
    messages: [{ role: "user" as const, content }],
    temperature: 0,
    ...extra,
  });
  const upstreamCalls = () => upstream.received.filter((r) => r.path.endsWith("/chat/completions")).length;

  const usageRow = async (requestId: string) => (await usageRowOf(app, db, requestId))!;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = openPostgres({ url: database.url, poolSize: 5 });
    await migrate(db);
    upstream = await startFakeOpenAiUpstream();
    app = await startTestApp({
      db,
      config: testConfig({
        DATABASE_URL: database.url,
        OPENAI_BASE_URL: upstream.url,
        MEMORY_DEFAULT_MODE: "off",
      }),
    });
  });

  afterAll(async () => {
    await app.close();
    await upstream.close();
    await db.close();
    await database.drop();
  });

  test("When the same deterministic request is asked twice with x-perpetual-cache: exact, then the second is answered from the cache at no cost, and the saving is recorded", async () => {
    const { client } = await newClient("exact@example.com");
    const first = await client.chat.completions
      .create(ask("What is the boiling point of water?"), exact)
      .withResponse();
    expect(first.response.headers.get("x-perpetual-cache")).toBe("miss");
    const calls = upstreamCalls();
    const second = await client.chat.completions
      .create(ask("  What is the boiling point of   water? "), exact) // whitespace does not matter
      .withResponse();
    expect(upstreamCalls()).toBe(calls);
    expect(second.response.headers.get("x-perpetual-cache")).toBe("hit");
    expect(second.response.headers.get("x-perpetual-cache-match")).toBe("exact");
    expect(second.data.choices[0]!.message.content).toBe(first.data.choices[0]!.message.content);

    const paid = await usageRow(first.response.headers.get("x-perpetual-request-id")!);
    const hit = await usageRow(second.response.headers.get("x-perpetual-request-id")!);
    expect(Number(paid.cost_usd)).toBeGreaterThan(0);
    expect(paid.cache_hit).toBeNull();
    expect(hit).toMatchObject({ cache_hit: "exact", status_code: 200, prompt_tokens: 0, completion_tokens: 0 });
    expect(Number(hit.cost_usd)).toBe(0);
    expect(Number(hit.saved_cost_usd)).toBeCloseTo(Number(paid.cost_usd), 8);
    const lookups = await app.services.metrics.cacheLookups.get();
    expect(lookups.values.find((v) => v.labels.outcome === "exact")?.value).toBeGreaterThanOrEqual(1);
  });

  test("When a cached answer is asked for as a stream, or a streamed answer is asked for again, then each is served from the cache", async () => {
    const { client } = await newClient("stream@example.com");
    // A streamed miss is assembled and cached...
    const stream = await client.chat.completions.create({ ...ask("Tell me a short story"), stream: true }, exact);
    let streamed = "";
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta.content ?? "";
    const calls = upstreamCalls();
    // ...so the same request, not streamed, is a hit with the same text,
    const json = await client.chat.completions.create(ask("Tell me a short story"), exact).withResponse();
    expect(json.response.headers.get("x-perpetual-cache")).toBe("hit");
    expect(json.data.choices[0]!.message.content).toBe(streamed);
    // and streamed again, it is replayed as chunks (with usage when asked).
    const replay = await client.chat.completions.create(
      { ...ask("Tell me a short story"), stream: true, stream_options: { include_usage: true } },
      exact,
    );
    let replayed = "";
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of replay) {
      replayed += chunk.choices[0]?.delta.content ?? "";
      usage ??= chunk.usage ?? undefined;
    }
    expect(replayed).toBe(streamed);
    expect(usage).toBeDefined();
    expect(upstreamCalls()).toBe(calls);
  });

  test("When a tool call is cached, then the replay carries the call", async () => {
    const { client } = await newClient("tools@example.com");
    const tools = [{ type: "function" as const, function: { name: "get_weather", parameters: { type: "object" } } }];
    const request = { ...ask("Weather in Paris?"), model: "openai/tool-call", tools };
    await client.chat.completions.create(request, exact);
    const stream = await client.chat.completions.create({ ...request, stream: true }, exact).withResponse();
    expect(stream.response.headers.get("x-perpetual-cache")).toBe("hit");
    const calls: unknown[] = [];
    for await (const chunk of stream.data) calls.push(...(chunk.choices[0]?.delta.tool_calls ?? []));
    expect(calls).toEqual([
      { index: 0, id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } },
    ]);
  });

  test("When sampling is not deterministic, then nothing is cached unless the caller forces it", async () => {
    const { client } = await newClient("random@example.com");
    const sampled = ask("Write a haiku", { temperature: 0.9 });
    const skipped = await client.chat.completions.create(sampled, exact).withResponse();
    expect(skipped.response.headers.get("x-perpetual-cache")).toBe("skip");
    const calls = upstreamCalls();
    await client.chat.completions.create(sampled, exact);
    expect(upstreamCalls()).toBe(calls + 1);

    const forced = { headers: { "x-perpetual-cache": "exact", "x-perpetual-cache-force": "true" } };
    await client.chat.completions.create(sampled, forced);
    const again = await client.chat.completions.create(sampled, forced).withResponse();
    expect(again.response.headers.get("x-perpetual-cache")).toBe("hit");
  });

  test("When another user sends the very same request, then they never get the first user's cached answer", async () => {
    const alice = await newClient("alice-cache@example.com");
    const bob = await newClient("bob-cache@example.com");
    await alice.client.chat.completions.create(ask("My secret plan"), exact);
    const theirs = await bob.client.chat.completions.create(ask("My secret plan"), exact).withResponse();
    expect(theirs.response.headers.get("x-perpetual-cache")).toBe("miss");
  });

  test("When x-perpetual-cache is semantic, then a similar last turn hits and an unrelated one does not", async () => {
    const { client } = await newClient("semantic@example.com");
    await client.chat.completions.create(ask("What is the capital city of France?"), semantic);
    const similar = await client.chat.completions
      .create(ask("Please, what's the capital city of France?"), semantic)
      .withResponse();
    expect(similar.response.headers.get("x-perpetual-cache")).toBe("hit");
    expect(similar.response.headers.get("x-perpetual-cache-match")).toBe("semantic");
    expect(similar.data.choices[0]!.message.content).toBe("Echo: What is the capital city of France?");
    const unrelated = await client.chat.completions
      .create(ask("How do I bake sourdough bread at home?"), semantic)
      .withResponse();
    expect(unrelated.response.headers.get("x-perpetual-cache")).toBe("miss");
    // The built-in word vectors rate this closer to the cached question than a rephrasing (0.96): the content
    // words differ, so it is not a hit.
    const otherCountry = await client.chat.completions
      .create(ask("What is the capital city of Germany?"), semantic)
      .withResponse();
    expect(otherCountry.response.headers.get("x-perpetual-cache")).toBe("miss");
    expect(otherCountry.data.choices[0]!.message.content).toBe("Echo: What is the capital city of Germany?");
    // Same last turn, other parameters: a different scope, never a semantic hit.
    const otherModel = await client.chat.completions
      .create(ask("What is the capital city of France, please?", { max_tokens: 5 }), semantic)
      .withResponse();
    expect(otherModel.response.headers.get("x-perpetual-cache")).toBe("miss");
  });

  test("When the user deletes their memories, then their cached answers are gone too", async () => {
    const { client, key } = await newClient("forget@example.com");
    await client.chat.completions.create(ask("Remember my address"), exact);
    const hit = await client.chat.completions.create(ask("Remember my address"), exact).withResponse();
    expect(hit.response.headers.get("x-perpetual-cache")).toBe("hit");
    const deleted = await fetch(`${app.baseUrl}/v1/memories?all=true`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${key}` },
    });
    expect(deleted.status).toBe(200);
    const after = await client.chat.completions.create(ask("Remember my address"), exact).withResponse();
    expect(after.response.headers.get("x-perpetual-cache")).toBe("miss");
  });

  test("When a user sets their own default in /v1/me/settings, then their requests without the header use it, and the header still wins", async () => {
    const { client, key } = await newClient("settings@example.com");
    const settings = (method: string, body?: unknown) =>
      fetch(`${app.baseUrl}/v1/me/settings`, {
        method,
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));
    expect(await settings("GET")).toEqual({
      status: 200,
      body: { object: "user.settings", response_cache: null, memory_mode: null },
    });
    const before = await client.chat.completions.create(ask("Default off?")).withResponse();
    expect(before.response.headers.get("x-perpetual-cache")).toBeNull();

    expect(await settings("PATCH", { response_cache: "exact" })).toEqual({
      status: 200,
      body: { object: "user.settings", response_cache: "exact", memory_mode: null },
    });
    await client.chat.completions.create(ask("Cached by my setting"));
    const hit = await client.chat.completions.create(ask("Cached by my setting")).withResponse();
    expect(hit.response.headers.get("x-perpetual-cache")).toBe("hit");
    const off = await client.chat.completions
      .create(ask("Cached by my setting"), { headers: { "x-perpetual-cache": "off" } })
      .withResponse();
    expect(off.response.headers.get("x-perpetual-cache")).toBeNull();

    expect((await settings("PATCH", { response_cache: "always" })).status).toBe(400);
    expect((await settings("PATCH", { tier: "enterprise" })).status).toBe(400);
    expect((await settings("PATCH", { response_cache: null })).body.response_cache).toBeNull();
  });

  test("When the cache header has a bad value, then it is a 400 naming it", async () => {
    const { client } = await newClient("bad-header@example.com");
    for (const headers of [{ "x-perpetual-cache": "always" }, { "x-perpetual-cache-force": "yes please" }]) {
      const error = await client.chat.completions.create(ask("hi"), { headers }).catch((e) => e);
      expect(error).toMatchObject({ status: 400, code: "invalid_header", param: Object.keys(headers)[0] });
    }
  });
});
