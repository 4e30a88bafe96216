import { randomBytes } from "node:crypto";
import OpenAI from "openai";
import { type Database, migrate, openPostgres } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { type FakeAnthropicUpstream, startFakeAnthropicUpstream } from "../fakes/anthropic-upstream";
import {
  FAKE_RESPONSES_USAGE,
  FAKE_USAGE,
  type FakeOpenAiUpstream,
  startFakeOpenAiUpstream,
} from "../fakes/openai-upstream";
import { startTestApp, type TestApp, testConfig, usageRowOf } from "../helpers/app";
import { createTestDatabase } from "../helpers/postgres";

/** Translated to chat completions: any provider but OpenAI itself (an OpenAI-compatible one here). */
const CHAT = "groq/llama-3.1-8b-instant";

/** Reads a stream's event types until it ends or the SDK raises; the error, if any. */
async function eventsUntilFailure(stream: AsyncIterable<{ type: string }>) {
  const types: string[] = [];
  try {
    for await (const event of stream) types.push(event.type);
    return { types, failure: undefined };
  } catch (failure) {
    return { types, failure };
  }
}

const WEATHER_TOOL = {
  type: "function" as const,
  name: "get_weather",
  description: "Weather for a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  strict: true,
};

describe("OpenAI's Responses API with the official openai SDK, on PostgreSQL 15", () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;
  let upstream: FakeOpenAiUpstream;
  let anthropicUpstream: FakeAnthropicUpstream;
  let app: TestApp;
  let client: OpenAI;
  let other: OpenAI;

  /** The chat request that left Perpetual for the last call (memory off in these tests: exactly what was sent). */
  const lastUpstreamBody = () =>
    upstream.received.at(-1)!.body as { messages: Array<Record<string, unknown>> } & Record<string, unknown>;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = openPostgres({ url: database.url, poolSize: 5 });
    await migrate(db);
    upstream = await startFakeOpenAiUpstream();
    anthropicUpstream = await startFakeAnthropicUpstream();
    app = await startTestApp({
      db,
      config: testConfig({
        DATABASE_URL: database.url,
        OPENAI_BASE_URL: upstream.url,
        GROQ_BASE_URL: upstream.url,
        ANTHROPIC_BASE_URL: anthropicUpstream.url,
        MEMORY_DEFAULT_MODE: "off",
      }),
    });
    const clientFor = async (email: string) => {
      const user = await createUser(db, email, "enterprise");
      await app.services.providerKeys.add(user.id, "openai", `sk-proj-${randomBytes(16).toString("hex")}`);
      await app.services.providerKeys.add(user.id, "anthropic", `sk-ant-api03-${randomBytes(16).toString("hex")}`);
      await app.services.providerKeys.add(user.id, "groq", `gsk_${randomBytes(16).toString("hex")}`);
      const key = (await createApiKey(db, user.id)).key;
      return new OpenAI({ apiKey: key, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
    };
    client = await clientFor("responses@example.com");
    other = await clientFor("someone-else@example.com");
  });

  afterAll(async () => {
    await app.close();
    await upstream.close();
    await anthropicUpstream.close();
    await db.close();
    await database.drop();
  });

  describe("Passed through to OpenAI's own /v1/responses", () => {
    const lastResponsesCall = () => upstream.received.filter((r) => r.path.endsWith("/v1/responses")).at(-1)!;

    test("When the SDK README's first example runs against an OpenAI model, then OpenAI's answer comes back under Perpetual's id, with usage recorded", async () => {
      const { data: response, response: raw } = await client.responses
        .create({
          model: "gpt-4o",
          input: "hello responses",
          instructions: "Be brief.",
          max_output_tokens: 50,
          metadata: { ticket: "42" },
        })
        .withResponse();
      expect(response.output_text).toBe("Echo: hello responses");
      const requestId = raw.headers.get("x-perpetual-request-id")!;
      expect(response).toMatchObject({
        id: `resp_${requestId.replace(/^req_/, "")}`,
        object: "response",
        instructions: "Be brief.",
        metadata: { ticket: "42" },
        usage: FAKE_RESPONSES_USAGE,
      });
      const sent = lastResponsesCall().body;
      expect(sent).toMatchObject({ model: "gpt-4o", store: false, max_output_tokens: 50, metadata: { ticket: "42" } });
      expect(sent.input).toEqual([
        { role: "system", content: "Be brief." },
        { role: "user", content: "hello responses" },
      ]);
      expect(sent).not.toHaveProperty("previous_response_id");
      expect(sent).not.toHaveProperty("instructions");
      const row = await usageRowOf(app, db, requestId);
      expect(row).toMatchObject({
        endpoint: "/v1/responses",
        provider: "openai",
        prompt_tokens: 13,
        completion_tokens: 5,
        cached_tokens: 2,
      });
    });

    test("When OpenAI's built-in tools are used, then they reach OpenAI and their output items come back, streamed or not", async () => {
      const tools = [{ type: "web_search" as const }];
      const response = await client.responses.create({ model: "gpt-4o", input: "news today?", tools });
      expect(response.output.map((item) => item.type)).toEqual(["web_search_call", "message"]);
      expect(lastResponsesCall().body.tools).toEqual(tools);

      const stream = client.responses.stream({ model: "gpt-4o", input: "stream the news", tools });
      const types: string[] = [];
      for await (const event of stream) types.push(event.type);
      const final = await stream.finalResponse();
      expect(final.output_text).toBe("Echo: stream the news");
      expect(final.output.map((item) => item.type)).toEqual(["web_search_call", "message"]);
      expect(types.filter((t) => t === "response.created")).toHaveLength(1);
      expect(types.at(-1)).toBe("response.completed");
      expect((await client.responses.retrieve(final.id)).output_text).toBe("Echo: stream the news");

      // Time to first token is the first text, not OpenAI's opening events; usage is OpenAI's.
      const { data: events, response: timed } = await client.responses
        .create({ model: "gpt-4o", input: "timed", stream: true })
        .withResponse();
      for await (const _event of events);
      const row = await usageRowOf(app, db, timed.headers.get("x-perpetual-request-id"));
      expect(row).toMatchObject({ stream: true, status_code: 200, prompt_tokens: 13, completion_tokens: 5 });
      expect(row!.time_to_first_token_ms).not.toBeNull();
    });

    test("When a chain starts on OpenAI and continues on another provider, then the stored conversation carries over", async () => {
      const first = await client.responses.create({ model: "gpt-4o", input: "My name is Ada." });
      await client.responses.create({ model: CHAT, input: "What is my name?", previous_response_id: first.id });
      expect(lastUpstreamBody().messages).toEqual([
        { role: "user", content: "My name is Ada." },
        { role: "assistant", content: "Echo: My name is Ada." },
        { role: "user", content: "What is my name?" },
      ]);
      const back = await client.responses.create({
        model: "gpt-4o",
        input: "And now?",
        previous_response_id: first.id,
      });
      expect(back.previous_response_id).toBe(first.id);
      expect(lastResponsesCall().body.input).toEqual([
        { role: "user", content: "My name is Ada." },
        { role: "assistant", content: "Echo: My name is Ada." },
        { role: "user", content: "And now?" },
      ]);
    });

    test("When OpenAI fails mid-stream, then the stream ends with response.failed and an error the SDK raises, and the row says so", async () => {
      const stream = await client.responses.create({
        model: "openai/error-mid-stream",
        input: "hi there friend",
        stream: true,
      });
      const { types, failure } = await eventsUntilFailure(stream);
      expect(types).toContain("response.output_text.delta");
      expect(types.at(-1)).toBe("response.failed");
      expect(failure).toBeInstanceOf(OpenAI.APIError);
    });

    test("When OpenAI refuses the request, then its error reaches the client in OpenAI's shape", async () => {
      const error = await client.responses.create({ model: "openai/fail-400", input: "hi" }).catch((e) => e);
      expect(error).toMatchObject({ status: 400, code: "invalid_value" });
    });
  });

  test("When a request is translated for a chat-only provider, then the answer, the usage and the echoed fields come back, and a usage row is recorded", async () => {
    const { data: response, response: raw } = await client.responses
      .create({
        model: CHAT,
        input: "hello responses",
        instructions: "Be brief.",
        max_output_tokens: 50,
        metadata: { ticket: "42" },
        temperature: 0.2,
      })
      .withResponse();
    expect(response.output_text).toBe("Echo: hello responses");
    expect(response).toMatchObject({
      object: "response",
      status: "completed",
      model: "llama-3.1-8b-instant",
      instructions: "Be brief.",
      max_output_tokens: 50,
      metadata: { ticket: "42" },
      temperature: 0.2,
      usage: {
        input_tokens: FAKE_USAGE.prompt_tokens,
        output_tokens: FAKE_USAGE.completion_tokens,
        total_tokens: FAKE_USAGE.total_tokens,
      },
    });
    expect(response.id).toMatch(/^resp_[0-9a-f]{32}$/);
    expect(response.output[0]).toMatchObject({ type: "message", role: "assistant", status: "completed" });
    const sent = lastUpstreamBody();
    expect(sent.messages).toEqual([
      { role: "system", content: "Be brief." },
      { role: "user", content: "hello responses" },
    ]);
    expect(sent).toMatchObject({ model: "llama-3.1-8b-instant", max_completion_tokens: 50, temperature: 0.2 });
    expect(sent).not.toHaveProperty("metadata");
    expect(raw.headers.get("x-ratelimit-limit-requests")).toBeTruthy();

    const requestId = raw.headers.get("x-perpetual-request-id")!;
    expect(response.id).toBe(`resp_${requestId.replace(/^req_/, "")}`);
    const row = await usageRowOf(app, db, requestId);
    expect(row).toMatchObject({ endpoint: "/v1/responses", status_code: 200, prompt_tokens: 11, completion_tokens: 7 });
  });

  test("When a response is streamed with responses.stream, then typed events arrive in order and the final response matches", async () => {
    const stream = client.responses.stream({ model: CHAT, input: "stream me" });
    const types: string[] = [];
    let text = "";
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === "response.output_text.delta") text += event.delta;
    }
    const final = await stream.finalResponse();
    expect(text).toBe("Echo: stream me");
    expect(final.output_text).toBe("Echo: stream me");
    expect(final.usage).toMatchObject({ input_tokens: 11, output_tokens: 7 });
    expect(types[0]).toBe("response.created");
    expect(types[1]).toBe("response.in_progress");
    expect(types.slice(2, 4)).toEqual(["response.output_item.added", "response.content_part.added"]);
    expect(types.slice(-4)).toEqual([
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    expect(lastUpstreamBody()).toMatchObject({ stream: true, stream_options: { include_usage: true } });
    // Stored as streamed.
    expect((await client.responses.retrieve(final.id)).output_text).toBe("Echo: stream me");
  });

  test("When a function tool is called and its output sent back with previous_response_id, then the chain reaches the provider as tool calls and a tool message", async () => {
    const first = await client.responses.create({
      model: "groq/tool-call",
      input: "Weather in Paris?",
      tools: [WEATHER_TOOL],
    });
    const call = first.output.find((item) => item.type === "function_call");
    expect(call).toMatchObject({
      type: "function_call",
      call_id: "call_1",
      name: "get_weather",
      arguments: '{"city":"Paris"}',
    });
    expect(lastUpstreamBody().tools).toEqual([
      {
        type: "function",
        function: {
          name: "get_weather",
          description: "Weather for a city",
          parameters: WEATHER_TOOL.parameters,
          strict: true,
        },
      },
    ]);

    const second = await client.responses.create({
      model: CHAT,
      previous_response_id: first.id,
      input: [{ type: "function_call_output", call_id: "call_1", output: "sunny, 21 C" }],
      tools: [WEATHER_TOOL],
      tool_choice: { type: "function", name: "get_weather" },
    });
    expect(second.previous_response_id).toBe(first.id);
    const sent = lastUpstreamBody();
    expect(sent.messages).toEqual([
      { role: "user", content: "Weather in Paris?" },
      {
        role: "assistant",
        content: null,
        tool_calls: [
          { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } },
        ],
      },
      { role: "tool", tool_call_id: "call_1", content: "sunny, 21 C" },
    ]);
    expect(sent.tool_choice).toEqual({ type: "function", function: { name: "get_weather" } });
  });

  test("When a tool call is streamed, then the arguments arrive as deltas and the final response holds the call", async () => {
    const stream = client.responses.stream({ model: "groq/tool-call", input: "Weather?", tools: [WEATHER_TOOL] });
    let args = "";
    for await (const event of stream) {
      if (event.type === "response.function_call_arguments.delta") args += event.delta;
    }
    const final = await stream.finalResponse();
    expect(args).toBe('{"city":"Paris"}');
    expect(final.output).toEqual([
      expect.objectContaining({ type: "function_call", call_id: "call_1", name: "get_weather", arguments: args }),
    ]);
  });

  test("When a conversation is chained with previous_response_id, then earlier turns are sent again, instructions are not inherited, and retrieve/delete work", async () => {
    const first = await client.responses.create({
      model: CHAT,
      input: "My name is Ada.",
      instructions: "Be brief.",
    });
    const second = await client.responses.create({
      model: CHAT,
      input: "What is my name?",
      previous_response_id: first.id,
    });
    expect(lastUpstreamBody().messages).toEqual([
      { role: "user", content: "My name is Ada." },
      { role: "assistant", content: "Echo: My name is Ada." },
      { role: "user", content: "What is my name?" },
    ]);
    const retrieved = await client.responses.retrieve(second.id);
    expect(retrieved.output_text).toBe(second.output_text);
    expect(retrieved.id).toBe(second.id);

    await client.responses.delete(first.id);
    await expect(client.responses.retrieve(first.id)).rejects.toMatchObject({ status: 404 });
    await expect(client.responses.delete(first.id)).rejects.toMatchObject({ status: 404 });
    await expect(
      client.responses.create({ model: CHAT, input: "again", previous_response_id: first.id }),
    ).rejects.toMatchObject({ status: 400, code: "previous_response_not_found", param: "previous_response_id" });
    // The follow-up still chains: it kept the whole conversation.
    await client.responses.create({ model: CHAT, input: "Still there?", previous_response_id: second.id });
    expect(lastUpstreamBody().messages).toHaveLength(5);
  });

  test("When another user names a response, then they can neither read, delete nor continue it", async () => {
    const mine = await client.responses.create({ model: CHAT, input: "private thoughts" });
    await expect(other.responses.retrieve(mine.id)).rejects.toMatchObject({ status: 404 });
    await expect(other.responses.delete(mine.id)).rejects.toMatchObject({ status: 404 });
    await expect(
      other.responses.create({ model: CHAT, input: "tell me", previous_response_id: mine.id }),
    ).rejects.toMatchObject({ status: 400, code: "previous_response_not_found" });
    expect((await client.responses.retrieve(mine.id)).output_text).toBe("Echo: private thoughts");
  });

  test("When store is false, then the response is not kept", async () => {
    const response = await client.responses.create({ model: CHAT, input: "forget me", store: false });
    expect(response).toMatchObject({ store: false });
    await expect(client.responses.retrieve(response.id)).rejects.toMatchObject({ status: 404 });
  });

  test("When input items carry roles, images and a JSON schema format, then each is translated", async () => {
    await client.responses.create({
      model: CHAT,
      input: [
        { role: "developer", content: "Answer in JSON." },
        {
          role: "user",
          content: [
            { type: "input_text", text: "What is in this picture?" },
            { type: "input_image", image_url: "https://example.com/cat.png", detail: "low" },
          ],
        },
      ],
      text: {
        format: {
          type: "json_schema",
          name: "answer",
          schema: { type: "object", properties: { animal: { type: "string" } }, required: ["animal"] },
          strict: true,
        },
      },
      reasoning: { effort: "low" },
    });
    const sent = lastUpstreamBody();
    expect(sent.messages).toEqual([
      { role: "developer", content: "Answer in JSON." },
      {
        role: "user",
        content: [
          { type: "text", text: "What is in this picture?" },
          { type: "image_url", image_url: { url: "https://example.com/cat.png", detail: "low" } },
        ],
      },
    ]);
    expect(sent.response_format).toEqual({
      type: "json_schema",
      json_schema: {
        name: "answer",
        schema: { type: "object", properties: { animal: { type: "string" } }, required: ["animal"] },
        strict: true,
      },
    });
    expect(sent.reasoning_effort).toBe("low");
  });

  test("When a Claude model is asked through the Responses API, then it is answered through the Anthropic translation", async () => {
    const response = await client.responses.create({ model: "claude-haiku-4-5", input: "hello claude" });
    expect(response.output_text).toBe("Echo: hello claude");
    expect(response.model).toContain("claude");
  });

  test("When memory is on, then the exchange is written back and recalled into a later response, and the headers say so", async () => {
    const on = { headers: { "x-perpetual-memory": "on" } };
    await client.responses.create({ model: CHAT, input: "My favourite colour is teal, like the sea." }, on);
    await app.services.usage.flush();
    await app.services.memory.outbox.drain();
    const { response } = await client.responses
      .create({ model: CHAT, input: "What is my favourite colour?", store: false }, on)
      .withResponse();
    expect(response.headers.get("x-perpetual-memory")).toBe("ok");
    const [memory, question] = lastUpstreamBody().messages;
    expect(memory).toMatchObject({ role: "system" });
    expect(String(memory!.content)).toContain("My favourite colour is teal");
    expect(question).toEqual({ role: "user", content: "What is my favourite colour?" });
  });

  test.each([
    [{ tools: [{ type: "web_search" }] }, "tools[0].type", "unsupported_tool"],
    [{ background: true }, "background", "unsupported_parameter"],
    [{ conversation: "conv_1" }, "conversation", "unsupported_parameter"],
    [{ frequency_of_nonsense: 3 }, "frequency_of_nonsense", "unknown_parameter"],
    [{ input: [{ type: "item_reference", id: "msg_1" }] }, "input[0].type", "unsupported_input_item"],
    [{ input: [{ role: "wizard", content: "hi" }] }, "input[0].role", "invalid_value"],
    [{ max_output_tokens: 0 }, "max_output_tokens", "invalid_value"],
    [{ model: "" }, "model", "invalid_value"],
  ])("When the request has %p, then it is a 400 naming %s", async (change, param, code) => {
    const error = await client.responses.create({ model: CHAT, input: "hi", ...(change as object) } as never).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect(error).toMatchObject({ status: 400, param, code });
  });

  test("When the provider fails after the stream began, then the stream ends with response.failed and an error the SDK raises", async () => {
    const stream = await client.responses.create({ model: "groq/error-mid-stream", input: "hi", stream: true });
    const { types, failure } = await eventsUntilFailure(stream);
    expect(types).toContain("response.output_text.delta");
    expect(types.at(-1)).toBe("response.failed");
    expect(failure).toBeInstanceOf(OpenAI.APIError);
  });

  test("When a malformed or unknown id is asked for, then it is an OpenAI-shaped 404", async () => {
    await expect(client.responses.retrieve("resp_nothing")).rejects.toMatchObject({
      status: 404,
      code: "response_not_found",
    });
    await expect(client.responses.retrieve(`resp_${"0".repeat(32)}`)).rejects.toMatchObject({ status: 404 });
  });
});
