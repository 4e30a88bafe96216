import { randomBytes } from "node:crypto";
import OpenAI from "openai";
import { type Database, migrate, openPostgres } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { FAKE_USAGE, type FakeOpenAiUpstream, startFakeOpenAiUpstream } from "../fakes/openai-upstream";
import { startTestApp, type TestApp, testConfig } from "../helpers/app";
import { eventually } from "../helpers/eventually";
import { createTestDatabase } from "../helpers/postgres";
import { streamedText } from "../helpers/streams";

interface Caller {
  userId: string;
  key: string;
  providerKey: string;
  client: OpenAI;
}

describe("OpenAI-compatible proxy with the official openai SDK, on PostgreSQL 15", () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;
  let upstream: FakeOpenAiUpstream;
  let app: TestApp;
  let alice: Caller;
  let bob: Caller;

  /** A user with a Perpetual key and (unless `providerKey` is null) that OpenAI key stored. */
  async function callerWithKey(email: string, providerKey: string | null): Promise<Caller> {
    const user = await createUser(db, email, "enterprise");
    const key = (await createApiKey(db, user.id)).key;
    if (providerKey) await app.services.providerKeys.add(user.id, "openai", providerKey);
    const client = new OpenAI({ apiKey: key, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
    return { userId: user.id, key, providerKey: providerKey ?? "", client };
  }

  const caller = (email: string, withKey = true) =>
    callerWithKey(email, withKey ? `sk-proj-${randomBytes(16).toString("hex")}` : null);

  async function usageRow(requestId: string) {
    await app.services.usage.flush();
    const rows = await db.query<Record<string, unknown>>("select * from usage_logs where request_id = $1", [requestId]);
    return rows;
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    db = openPostgres({ url: database.url, poolSize: 5 });
    await migrate(db);
    upstream = await startFakeOpenAiUpstream();
    app = await startTestApp({
      db,
      config: testConfig({ DATABASE_URL: database.url, OPENAI_BASE_URL: upstream.url, GROQ_BASE_URL: upstream.url }),
    });
    alice = await caller("alice@example.com");
    bob = await caller("bob@example.com");
  });

  afterAll(async () => {
    await app.close();
    await upstream.close();
    await db.close();
    await database.drop();
  });

  test("When a chat completion is created, then the answer, the usage and the cost come from the provider", async () => {
    const { data, response } = await alice.client.chat.completions
      .create({ model: "gpt-4o", messages: [{ role: "user", content: "hello" }] })
      .withResponse();
    expect(data.choices[0]?.message.content).toBe("Echo: hello");
    expect(data.usage).toEqual(FAKE_USAGE);
    const sent = upstream.received.at(-1)!;
    expect(sent.authorization).toBe(`Bearer ${alice.providerKey}`);
    expect(sent.body).toEqual({ model: "gpt-4o", messages: [{ role: "user", content: "hello" }], stream: false });
    const [row] = await usageRow(response.headers.get("x-request-id")!);
    expect(row).toMatchObject({
      user_id: alice.userId,
      provider: "openai",
      model: "gpt-4o",
      endpoint: "/v1/chat/completions",
      prompt_tokens: 11,
      completion_tokens: 7,
      cached_tokens: 3,
      total_tokens: 18,
      status_code: 200,
      stream: false,
      usage_estimated: false,
      cost_unknown: false,
    });
    // 8 uncached input at $2.50/M + 3 cached at $1.25/M + 7 output at $10/M
    expect(Number(row!.cost_usd)).toBeCloseTo((8 * 2.5 + 3 * 1.25 + 7 * 10) / 1e6, 10);
  });

  test("When a completion is streamed, then chunks arrive in order, usage is recorded, and the client sees no usage chunk it did not ask for", async () => {
    const { data: stream, response } = await alice.client.chat.completions
      .create({ model: "gpt-4o", messages: [{ role: "user", content: "hello there" }], stream: true })
      .withResponse();
    expect(response.headers.get("content-type")).toMatch(/text\/event-stream/);
    expect(response.headers.get("x-accel-buffering")).toBe("no");
    const chunks: OpenAI.Chat.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks[0]?.choices[0]?.delta.role).toBe("assistant");
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe("Echo: hello there");
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe("stop");
    expect(chunks.every((c) => !c.usage && c.choices.length > 0)).toBe(true);
    expect(upstream.received.at(-1)!.body.stream_options).toEqual({ include_usage: true });
    const [row] = await usageRow(response.headers.get("x-request-id")!);
    expect(row).toMatchObject({
      prompt_tokens: 11,
      completion_tokens: 7,
      cached_tokens: 3,
      stream: true,
      status_code: 200,
    });
    expect(row!.time_to_first_token_ms).not.toBeNull();
  });

  test("When completions are streamed one after another, then they reuse one upstream connection", async () => {
    const stream = () => streamedText(alice.client, "gpt-4o", "hello again");
    expect(await stream()).toBe("Echo: hello again");
    const before = upstream.acceptedConnections();
    for (let i = 0; i < 3; i++) expect(await stream()).toBe("Echo: hello again");
    expect(upstream.acceptedConnections()).toBe(before);
  });

  test("When a provider keeps its response open after [DONE], then the client's stream ends and the upstream connection is cut soon after", async () => {
    const abortedBefore = upstream.abortedStreams();
    expect(await streamedText(alice.client, "openai/linger-after-done", "and then?")).toBe("Echo: and then?");
    // Not held until the body timeout: the connection would be lost to the pool for that long.
    await eventually(() => upstream.abortedStreams() > abortedBefore, { what: "the lingering upstream response cut" });
  });

  test("When a legacy text completion is created, streamed or not, then it reaches the provider's /completions and usage is recorded", async () => {
    const { data, response } = await alice.client.completions
      .create({ model: "gpt-3.5-turbo-instruct", prompt: "Once upon a time", max_tokens: 20 })
      .withResponse();
    expect(data).toMatchObject({ object: "text_completion", choices: [{ text: " completed: Once upon a time" }] });
    expect(upstream.received.at(-1)).toMatchObject({
      path: "/v1/completions",
      authorization: `Bearer ${alice.providerKey}`,
      body: { model: "gpt-3.5-turbo-instruct", prompt: "Once upon a time", max_tokens: 20, stream: false },
    });
    const [row] = await usageRow(response.headers.get("x-request-id")!);
    expect(row).toMatchObject({
      endpoint: "/v1/completions",
      prompt_tokens: 5,
      completion_tokens: 3,
      status_code: 200,
    });

    const { data: stream, response: streamed } = await alice.client.completions
      .create({ model: "gpt-3.5-turbo-instruct", prompt: "Knock knock", stream: true })
      .withResponse();
    const chunks: OpenAI.Completions.Completion[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.map((c) => c.choices[0]?.text ?? "").join("")).toBe(" completed: Knock knock");
    expect(chunks.every((c) => !c.usage)).toBe(true); // not asked for: hidden
    expect(upstream.received.at(-1)!.body.stream_options).toEqual({ include_usage: true });
    const [streamRow] = await usageRow(streamed.headers.get("x-request-id")!);
    expect(streamRow).toMatchObject({
      endpoint: "/v1/completions",
      completion_tokens: 3,
      stream: true,
      status_code: 200,
    });
  });

  test("When a text completion names an Anthropic model or is malformed, then it is a 400 naming the parameter", async () => {
    const claude = await alice.client.completions.create({ model: "claude-haiku-4-5", prompt: "hi" }).catch((e) => e);
    expect(claude).toMatchObject({ status: 400, code: "unsupported_endpoint", param: "model" });
    const noPrompt = await alice.client.completions
      .create({ model: "gpt-3.5-turbo-instruct" } as never)
      .catch((e) => e);
    expect(noPrompt).toMatchObject({ status: 400, param: "prompt" });
    const refused = await alice.client.completions.create({ model: "openai/fail-400", prompt: "hi" }).catch((e) => e);
    expect(refused).toMatchObject({ status: 400, code: "invalid_value" });
  });

  test("When the client asks for include_usage, then the final usage chunk is passed through", async () => {
    const stream = await alice.client.chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "count" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.Chat.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: FAKE_USAGE });
  });

  test("When two users call, then each upstream request carries exactly the caller's own key", async () => {
    const before = upstream.received.length;
    await bob.client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "bob" }] });
    await alice.client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "alice" }] });
    const [fromBob, fromAlice] = upstream.received.slice(before);
    expect(fromBob!.authorization).toBe(`Bearer ${bob.providerKey}`);
    expect(fromAlice!.authorization).toBe(`Bearer ${alice.providerKey}`);
    expect(
      upstream.received
        .filter((r) => r.authorization === `Bearer ${alice.providerKey}`)
        .every((r) => JSON.stringify(r.body).includes("bob") === false),
    ).toBe(true);
  });

  test("When a tool call is streamed, then the tool-call deltas reach the client intact", async () => {
    const stream = await alice.client.chat.completions.create({
      model: "openai/tool-call",
      messages: [{ role: "user", content: "weather?" }],
      tools: [
        {
          type: "function",
          function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } },
        },
      ],
      stream: true,
    });
    let args = "";
    let name = "";
    for await (const chunk of stream) {
      for (const call of chunk.choices[0]?.delta.tool_calls ?? []) {
        name ||= call.function?.name ?? "";
        args += call.function?.arguments ?? "";
      }
    }
    expect([name, JSON.parse(args)]).toEqual(["get_weather", { city: "Paris" }]);
    expect(upstream.received.at(-1)!.body.model).toBe("tool-call");
  });

  describe("errors reach the SDK as its typed errors", () => {
    test("When the Perpetual key is wrong, then AuthenticationError", async () => {
      const client = new OpenAI({ apiKey: `sk-perp-${"x".repeat(40)}`, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
      await expect(
        client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "x" }] }),
      ).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    });

    test("When the model is unknown, then NotFoundError model_not_found", async () => {
      const error = await alice.client.chat.completions
        .create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] })
        .catch((e) => e);
      expect(error).toBeInstanceOf(OpenAI.NotFoundError);
      expect(error.code).toBe("model_not_found");
      expect(error.param).toBe("model");
    });

    test("When the user has no key for the provider, then BadRequestError 'No API key found for provider' and x-should-retry false", async () => {
      const error = await alice.client.chat.completions
        .create({ model: "claude-sonnet-4-5", messages: [{ role: "user", content: "x" }] })
        .catch((e) => e);
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      expect(error.message).toContain("No API key found for provider anthropic");
      expect(error.headers.get("x-should-retry")).toBe("false");
    });

    test("When the body is invalid, then BadRequestError names the parameter", async () => {
      const error = await alice.client.chat.completions.create({ model: "gpt-4o", messages: [] }).catch((e) => e);
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      expect(error.param).toBe("messages");
    });

    test("When the provider rate-limits, then RateLimitError with the provider's retry-after", async () => {
      const error = await alice.client.chat.completions
        .create({ model: "openai/fail-429", messages: [{ role: "user", content: "x" }] })
        .catch((e) => e);
      expect(error).toBeInstanceOf(OpenAI.RateLimitError);
      expect(error.headers.get("retry-after")).toBe("7");
      expect(error.message).toContain("openai");
    });

    test("When the provider fails with 500, then 502 upstream_error naming the provider", async () => {
      const error = await alice.client.chat.completions
        .create({ model: "openai/fail-500", messages: [{ role: "user", content: "x" }] })
        .catch((e) => e);
      expect(error).toBeInstanceOf(OpenAI.InternalServerError);
      expect(error.status).toBe(502);
      expect(error.code).toBe("upstream_error");
    });

    test("When the provider rejects the request, then the 400 is kept; when it rejects the user's key, no key material leaks", async () => {
      const bad = await alice.client.chat.completions
        .create({ model: "openai/fail-400", messages: [{ role: "user", content: "x" }] })
        .catch((e) => e);
      expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
      expect(bad.message).toContain("openai: Invalid value for 'temperature'");
      upstream.acceptedKeys = new Set(["sk-proj-something-else"]);
      try {
        const rejected = await alice.client.chat.completions
          .create({ model: "gpt-4o", messages: [{ role: "user", content: "x" }] })
          .catch((e) => e);
        expect(rejected.status).toBe(401);
        expect(JSON.stringify(rejected.error)).not.toContain(alice.providerKey.slice(8, 20));
      } finally {
        upstream.acceptedKeys = undefined;
      }
    });

    test("When the provider sends an error event mid-stream, then the SDK raises it and the usage row records the failure", async () => {
      const { data: stream, response } = await alice.client.chat.completions
        .create({
          model: "openai/error-mid-stream",
          messages: [{ role: "user", content: "one two three four" }],
          stream: true,
        })
        .withResponse();
      const seen: string[] = [];
      await expect(
        (async () => {
          for await (const chunk of stream) seen.push(chunk.choices[0]?.delta.content ?? "");
        })(),
      ).rejects.toThrow(/crashed mid-stream/);
      expect(seen.join("")).toContain("Echo:");
      const [row] = await usageRow(response.headers.get("x-request-id")!);
      expect(row!.status_code).toBeGreaterThanOrEqual(500);
    });
  });

  describe.each([
    ["Mistral-style (32 alphanumerics)", "Xk3v9QmLr7TzB2pWn8Yd4Hf6Gj1Ks5Ac"],
    ["Together-style (64 hex)", "3f9a1c77e0b24d5e8a6b0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f7"],
    ["Google-style (AIza…)", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"],
  ])("when the provider echoes a %s key in an error", (_format, providerKey) => {
    let caller: Caller;
    beforeAll(async () => {
      caller = await callerWithKey(`echo-${randomBytes(4).toString("hex")}@example.com`, providerKey);
    });

    const leaks = (text: string) => {
      for (let i = 0; i + 8 <= providerKey.length; i++) if (text.includes(providerKey.slice(i, i + 8))) return true;
      return false;
    };

    test("When it answers 401 naming the key, then neither the client's error nor the log holds any 8 characters of it", async () => {
      const failure = (await caller.client.chat.completions
        .create({ model: "openai/echo-key-401", messages: [{ role: "user", content: "hi" }] })
        .catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;
      expect(failure.status).toBe(401);
      expect(failure.message).toContain("Incorrect API key provided");
      expect(leaks(JSON.stringify(failure.error))).toBe(false);
      expect(leaks(app.logs())).toBe(false);
    });

    test("When it names the key in an error event mid-stream, then the SSE error event holds none of it", async () => {
      const stream = await caller.client.chat.completions.create({
        model: "openai/echo-key-mid-stream",
        messages: [{ role: "user", content: "one two three" }],
        stream: true,
      });
      const failure = (await (async () => {
        for await (const _chunk of stream) {
        }
      })().catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;
      expect(failure).toBeInstanceOf(OpenAI.APIError);
      expect(failure.message).toContain("was revoked");
      expect(leaks(JSON.stringify(failure.error) + failure.message)).toBe(false);
      expect(leaks(app.logs())).toBe(false);
    });
  });

  describe("upstream protocol failures are the provider's, not ours", () => {
    test("When the provider answers 200 with an unreadable body, then 502 upstream_error and the usage row says upstream", async () => {
      const failure = await alice.client.chat.completions
        .create({ model: "openai/bad-json", messages: [{ role: "user", content: "hi" }] })
        .catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(OpenAI.APIError);
      const error = failure as InstanceType<typeof OpenAI.APIError>;
      expect(error.status).toBe(502);
      expect(error.code).toBe("upstream_error");
      const [row] = await usageRow(error.requestID!);
      expect(row).toMatchObject({ status_code: 502, error_code: "upstream_error", provider: "openai" });
    });

    test("When the provider drops the connection mid-stream, then the stream ends with an upstream_error event", async () => {
      const { data: stream, response } = await alice.client.chat.completions
        .create({ model: "openai/cut-mid-stream", messages: [{ role: "user", content: "one two" }], stream: true })
        .withResponse();
      const failure = await (async () => {
        for await (const _chunk of stream) {
        }
      })().catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(OpenAI.APIError);
      expect((failure as InstanceType<typeof OpenAI.APIError>).code).toBe("upstream_error");
      const [row] = await usageRow(response.headers.get("x-request-id")!);
      expect(row).toMatchObject({ status_code: 502, error_code: "upstream_stream_error" });
    });
  });

  test("When the client disconnects mid-stream, then the upstream call is aborted and one usage row is still written", async () => {
    const controller = new AbortController();
    const abortedBefore = upstream.abortedStreams();
    const { data: stream, response } = await alice.client.chat.completions
      .create(
        {
          model: "openai/slow-stream",
          messages: [{ role: "user", content: "a b c d e f g h i j k l m n o p" }],
          stream: true,
        },
        { signal: controller.signal },
      )
      .withResponse();
    // The SDK ends the iteration quietly when its own signal aborts.
    for await (const _chunk of stream) controller.abort();
    const requestId = response.headers.get("x-request-id")!;
    await eventually(async () => (await usageRow(requestId)).length > 0, { what: "the usage row" });
    const rows = await usageRow(requestId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status_code: 499, error_code: "client_closed_request", stream: true });
    await eventually(() => upstream.abortedStreams() > abortedBefore, { what: "the upstream call aborted" });
    expect(upstream.abortedStreams()).toBe(abortedBefore + 1);
  });

  test("When embeddings are requested, then vectors come back and usage is recorded", async () => {
    const { data, response } = await alice.client.embeddings
      .create({ model: "text-embedding-3-small", input: ["a", "b"] })
      .withResponse();
    expect(data.data).toHaveLength(2);
    expect(data.data[0]?.embedding).toHaveLength(8);
    const [row] = await usageRow(response.headers.get("x-request-id")!);
    expect(row).toMatchObject({
      endpoint: "/v1/embeddings",
      prompt_tokens: 10,
      total_tokens: 10,
      model: "text-embedding-3-small",
    });
  });

  test("When models are listed, then only models of providers with a stored key appear", async () => {
    const models = [];
    for await (const model of alice.client.models.list()) models.push(model);
    const ids = models.map((m) => m.id);
    expect(ids).toContain("gpt-4o");
    expect(ids).not.toContain("claude-sonnet-4-5");
    expect(models.find((m) => m.id === "gpt-4o")?.owned_by).toBe("openai");
    const retrieved = await alice.client.models.retrieve("gpt-4o");
    expect(retrieved.id).toBe("gpt-4o");
  });

  test("When mock_response is set, then no provider is called and the usage row costs nothing", async () => {
    const carol = await caller("carol@example.com", false);
    const before = upstream.received.length;
    const { data, response } = await carol.client.chat.completions
      .create({
        model: "gpt-4o",
        messages: [{ role: "user", content: "hi" }],
        mock_response: "Mocked answer here.",
      } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming)
      .withResponse();
    expect(data.choices[0]?.message.content).toBe("Mocked answer here.");
    const stream = await carol.client.chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
      mock_response: "Streamed mock.",
    } as OpenAI.Chat.ChatCompletionCreateParamsStreaming);
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    expect(text).toBe("Streamed mock.");
    expect(upstream.received.length).toBe(before);
    const [row] = await usageRow(response.headers.get("x-request-id")!);
    expect(row).toMatchObject({ provider: "mock", cost_unknown: false, usage_estimated: true, status_code: 200 });
    expect(Number(row!.cost_usd)).toBe(0);
    expect(Number(row!.completion_tokens)).toBeGreaterThan(0);
  });

  test("When requests are recorded, then the users' running totals follow the usage rows", async () => {
    await app.services.usage.flush();
    const [user] = await db.query<{ total_requests: number; total_tokens: number }>(
      "select total_requests, total_tokens from users where id = $1",
      [alice.userId],
    );
    const [sums] = await db.query<{ n: number; t: number }>(
      "select count(*)::int as n, coalesce(sum(total_tokens), 0)::int as t from usage_logs where user_id = $1",
      [alice.userId],
    );
    expect([Number(user!.total_requests), Number(user!.total_tokens)]).toEqual([sums!.n, sums!.t]);
  });
});
