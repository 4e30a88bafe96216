import { randomBytes } from "node:crypto";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { type Database, migrate, openPostgres } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { type FakeAnthropicUpstream, startFakeAnthropicUpstream } from "../fakes/anthropic-upstream";
import { FAKE_USAGE, type FakeOpenAiUpstream, startFakeOpenAiUpstream } from "../fakes/openai-upstream";
import { startTestApp, type TestApp, testConfig, usageRowOf } from "../helpers/app";
import { createTestDatabase } from "../helpers/postgres";

describe("Anthropic both ways, on PostgreSQL 15", () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;
  let anthropicUpstream: FakeAnthropicUpstream;
  let openaiUpstream: FakeOpenAiUpstream;
  let app: TestApp;
  let userId: string;
  let perpetualKey: string;
  const anthropicKey = `sk-ant-api03-${randomBytes(16).toString("hex")}`;
  let openai: OpenAI;
  let anthropic: Anthropic;

  const usageRow = async (requestId: string | null) => await usageRowOf(app, db, requestId);

  beforeAll(async () => {
    database = await createTestDatabase();
    db = openPostgres({ url: database.url, poolSize: 5 });
    await migrate(db);
    anthropicUpstream = await startFakeAnthropicUpstream();
    openaiUpstream = await startFakeOpenAiUpstream();
    app = await startTestApp({
      db,
      config: testConfig({
        DATABASE_URL: database.url,
        ANTHROPIC_BASE_URL: anthropicUpstream.url,
        OPENAI_BASE_URL: openaiUpstream.url,
      }),
    });
    const user = await createUser(db, "claude-fan@example.com", "enterprise");
    userId = user.id;
    perpetualKey = (await createApiKey(db, user.id)).key;
    await app.services.providerKeys.add(userId, "anthropic", anthropicKey);
    await app.services.providerKeys.add(userId, "openai", `sk-proj-${randomBytes(16).toString("hex")}`);
    openai = new OpenAI({ apiKey: perpetualKey, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
    anthropic = new Anthropic({ apiKey: perpetualKey, baseURL: app.baseUrl, maxRetries: 0 });
  });

  afterAll(async () => {
    await app.close();
    await anthropicUpstream.close();
    await openaiUpstream.close();
    await db.close();
    await database.drop();
  });

  describe("OpenAI clients calling Anthropic models", () => {
    test("When a chat completion goes to Claude, then the request is translated and usage includes cache tokens", async () => {
      const { data, response } = await openai.chat.completions
        .create({
          model: "claude-sonnet-4-5",
          messages: [
            { role: "system", content: "Be brief." },
            { role: "user", content: "hello claude" },
          ],
          temperature: 1.5,
          stop: "END",
        })
        .withResponse();
      expect(data.choices[0]?.message.content).toBe("Echo: hello claude");
      expect(data.choices[0]?.finish_reason).toBe("stop");
      expect(data.usage).toMatchObject({
        prompt_tokens: 27,
        completion_tokens: 9,
        total_tokens: 36,
        prompt_tokens_details: { cached_tokens: 5 },
      });
      const sent = anthropicUpstream.received.at(-1)!;
      expect(sent.apiKey).toBe(anthropicKey);
      expect(sent.version).toBeTruthy();
      expect(sent.body).toMatchObject({
        model: "claude-sonnet-4-5",
        system: "Be brief.",
        max_tokens: 4096,
        temperature: 1,
        stop_sequences: ["END"],
        messages: [{ role: "user", content: [{ type: "text", text: "hello claude" }] }],
      });
      const row = await usageRow(response.headers.get("x-request-id"));
      expect(row).toMatchObject({ provider: "anthropic", prompt_tokens: 27, completion_tokens: 9, cached_tokens: 5 });
      // 22 uncached input at $3/M, 5 cached at $0.30/M, 9 output at $15/M
      expect(Number(row!.cost_usd)).toBeCloseTo((22 * 3 + 5 * 0.3 + 9 * 15) / 1e6, 10);
    });

    test("When Claude answers with a tool call, streamed or not, then the client gets OpenAI tool_calls", async () => {
      const tools: OpenAI.Chat.ChatCompletionTool[] = [
        {
          type: "function",
          function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } },
        },
      ];
      const plain = await openai.chat.completions.create({
        model: "claude-tool",
        messages: [{ role: "user", content: "weather?" }],
        tools,
        tool_choice: "required",
      });
      expect(plain.choices[0]?.finish_reason).toBe("tool_calls");
      expect(plain.choices[0]?.message.tool_calls?.[0]).toMatchObject({
        id: "toolu_1",
        function: { name: "get_weather", arguments: '{"city":"Paris"}' },
      });
      expect(anthropicUpstream.received.at(-1)!.body).toMatchObject({
        tools: [{ name: "get_weather", input_schema: { type: "object" } }],
        tool_choice: { type: "any" },
      });

      const stream = await openai.chat.completions.create({
        model: "claude-tool",
        messages: [{ role: "user", content: "weather?" }],
        tools,
        stream: true,
      });
      let args = "";
      let text = "";
      let finish: string | null = null;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? "";
        for (const call of chunk.choices[0]?.delta.tool_calls ?? []) args += call.function?.arguments ?? "";
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
      expect(text).toBe("Let me check.");
      expect(JSON.parse(args)).toEqual({ city: "Paris" });
      expect(finish).toBe("tool_calls");
    });

    test("When a Claude completion is streamed, then the usage row has Anthropic's numbers", async () => {
      const { data: stream, response } = await openai.chat.completions
        .create({ model: "claude-haiku-4-5", messages: [{ role: "user", content: "stream me" }], stream: true })
        .withResponse();
      let text = "";
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
      expect(text).toBe("Echo: stream me");
      const row = await usageRow(response.headers.get("x-request-id"));
      expect(row).toMatchObject({ prompt_tokens: 27, completion_tokens: 9, cached_tokens: 5, stream: true });
    });

    test("When Anthropic rate-limits or is overloaded, then RateLimitError with retry-after, or 502", async () => {
      const limited = await openai.chat.completions
        .create({ model: "claude-fail-429", messages: [{ role: "user", content: "x" }] })
        .catch((e) => e);
      expect(limited).toBeInstanceOf(OpenAI.RateLimitError);
      expect(limited.headers.get("retry-after")).toBe("11");
      const overloaded = await openai.chat.completions
        .create({ model: "claude-overloaded", messages: [{ role: "user", content: "x" }] })
        .catch((e) => e);
      expect(overloaded.status).toBe(502);
    });
  });

  describe("The Anthropic SDK calling /v1/messages in front of an OpenAI model", () => {
    test("When a message is created, then it comes back in Anthropic's shape with usage", async () => {
      // Memory off: what this asserts is the translation, not what earlier tests left in memory.
      const message = await anthropic.messages.create(
        {
          model: "gpt-4o",
          max_tokens: 100,
          system: "You are terse.",
          messages: [{ role: "user", content: "hi there" }],
        },
        { headers: { "x-perpetual-memory": "off" } },
      );
      expect(message.type).toBe("message");
      expect(message.content).toEqual([{ type: "text", text: "Echo: hi there" }]);
      expect(message.stop_reason).toBe("end_turn");
      expect(message.usage).toMatchObject({
        input_tokens: FAKE_USAGE.prompt_tokens - 3,
        output_tokens: 7,
        cache_read_input_tokens: 3,
      });
      expect(openaiUpstream.received.at(-1)!.body).toMatchObject({
        model: "gpt-4o",
        max_tokens: 100,
        messages: [
          { role: "system", content: "You are terse." },
          { role: "user", content: "hi there" },
        ],
      });
    });

    test("When a message is streamed, then the SDK assembles the final message from Anthropic events", async () => {
      const stream = anthropic.messages.stream({
        model: "gpt-4o",
        max_tokens: 50,
        messages: [{ role: "user", content: "stream this" }],
      });
      const eventTypes: string[] = [];
      stream.on("streamEvent", (event) => eventTypes.push(event.type));
      const final = await stream.finalMessage();
      expect(final.content).toEqual([{ type: "text", text: "Echo: stream this" }]);
      expect(final.stop_reason).toBe("end_turn");
      expect(final.usage.output_tokens).toBe(7);
      expect(eventTypes[0]).toBe("message_start");
      expect(eventTypes.at(-1)).toBe("message_stop");
      expect(eventTypes).toContain("content_block_delta");
    });

    test("When an OpenAI model calls a tool, then the Anthropic client gets a tool_use block", async () => {
      const message = await anthropic.messages.create({
        model: "openai/tool-call",
        max_tokens: 100,
        tools: [{ name: "get_weather", input_schema: { type: "object", properties: { city: { type: "string" } } } }],
        messages: [{ role: "user", content: "weather?" }],
      });
      expect(message.stop_reason).toBe("tool_use");
      expect(message.content).toEqual([
        { type: "tool_use", id: "call_1", name: "get_weather", input: { city: "Paris" } },
      ]);
    });

    test("When the model is unknown or the key is wrong, then the Anthropic SDK raises its own typed errors", async () => {
      const missing = await anthropic.messages
        .create({ model: "no-such-model", max_tokens: 10, messages: [{ role: "user", content: "x" }] })
        .catch((e) => e);
      expect(missing).toBeInstanceOf(Anthropic.NotFoundError);
      expect(missing.error).toMatchObject({ type: "error", error: { type: "not_found_error" } });
      const stranger = new Anthropic({ apiKey: `sk-perp-${"z".repeat(40)}`, baseURL: app.baseUrl, maxRetries: 0 });
      const denied = await stranger.messages
        .create({ model: "gpt-4o", max_tokens: 10, messages: [{ role: "user", content: "x" }] })
        .catch((e) => e);
      expect(denied).toBeInstanceOf(Anthropic.AuthenticationError);
    });
  });
  describe("count_tokens and the rest of /v1/messages", () => {
    test("When the Anthropic SDK counts tokens for a Claude model, then Anthropic's own count comes back, asked with the caller's key", async () => {
      const request = {
        model: "claude-haiku-4-5",
        system: "Be brief.",
        messages: [{ role: "user" as const, content: "How many tokens is this?" }],
      };
      const counted = await anthropic.messages.countTokens(request);
      const sent = anthropicUpstream.received.at(-1)!;
      expect(sent.path).toBe("/v1/messages/count_tokens");
      expect(sent.apiKey).toBe(anthropicKey);
      expect(sent.body).toEqual(request);
      const { model: _model, ...counted_body } = request;
      expect(counted.input_tokens).toBe(7 + Math.ceil(JSON.stringify(counted_body).length / 4));
    });

    test("When tokens are counted for a non-Claude model, then they are estimated with a tokenizer and no provider is called", async () => {
      const before = openaiUpstream.received.length;
      const short = await anthropic.messages.countTokens({
        model: "gpt-4o",
        messages: [{ role: "user", content: "hi" }],
      });
      const long = await anthropic.messages.countTokens({
        model: "gpt-4o",
        messages: [{ role: "user", content: "hi ".repeat(500) }],
        tools: [{ name: "get_weather", input_schema: { type: "object", properties: { city: { type: "string" } } } }],
      });
      expect(short.input_tokens).toBeGreaterThan(0);
      expect(long.input_tokens).toBeGreaterThan(short.input_tokens + 400);
      expect(openaiUpstream.received.length).toBe(before);
    });

    test("When count_tokens is refused or the path is unknown, then the error is in Anthropic's shape", async () => {
      const unauthenticated = await fetch(`${app.baseUrl}/v1/messages/count_tokens`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "claude-haiku-4-5", messages: [{ role: "user", content: "x" }] }),
      });
      expect(unauthenticated.status).toBe(401);
      expect(await unauthenticated.json()).toMatchObject({ type: "error", error: { type: "authentication_error" } });
      const unknownModel = await anthropic.messages
        .countTokens({ model: "no-such-model", messages: [{ role: "user", content: "x" }] })
        .catch((e) => e);
      expect(unknownModel).toBeInstanceOf(Anthropic.NotFoundError);
      const unknownPath = await fetch(`${app.baseUrl}/v1/messages/batches`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": perpetualKey },
        body: "{}",
      });
      expect(unknownPath.status).toBe(404);
      expect(await unknownPath.json()).toMatchObject({ type: "error", error: { type: "not_found_error" } });
    });
  });
});
