import type { ChatChunk, ChatCompletion, ChatRequest } from "../../src/providers";
import {
  type AnthropicMessage,
  AnthropicToOpenAIStream,
  fromAnthropicMessage,
  fromAnthropicRequest,
  OpenAIToAnthropicStream,
  toAnthropicMessage,
  toAnthropicRequest,
} from "../../src/providers/anthropic/translate";

const req = (body: Record<string, unknown>) => body as unknown as ChatRequest;

describe("OpenAI → Anthropic requests", () => {
  test("When a conversation has system, images, tool calls and tool results, then each maps to Anthropic's blocks", () => {
    const out = toAnthropicRequest(
      req({
        model: "claude-x",
        max_completion_tokens: 300,
        max_tokens: 999,
        temperature: 1.7,
        top_p: 0.9,
        stop: ["A", "B"],
        user: "u-1",
        messages: [
          { role: "system", content: "Rule one." },
          { role: "developer", content: [{ type: "text", text: "Rule two." }] },
          {
            role: "user",
            content: [
              { type: "text", text: "What is this?" },
              { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } },
              { type: "image_url", image_url: { url: "https://example.com/cat.jpg" } },
            ],
          },
          { role: "user", content: "And the weather?" },
          {
            role: "assistant",
            content: "Checking.",
            tool_calls: [
              { id: "call_a", type: "function", function: { name: "weather", arguments: '{"city":"Paris"}' } },
              { id: "call_b", type: "function", function: { name: "time", arguments: "" } },
            ],
          },
          { role: "tool", tool_call_id: "call_a", content: "Sunny" },
          { role: "tool", tool_call_id: "call_b", content: [{ type: "text", text: "Noon" }] },
        ],
        tools: [
          { type: "function", function: { name: "weather", description: "Weather", parameters: { type: "object" } } },
        ],
        tool_choice: { type: "function", function: { name: "weather" } },
        parallel_tool_calls: false,
      }),
      "claude-upstream",
    );
    expect(out).toEqual({
      model: "claude-upstream",
      max_tokens: 300,
      system: "Rule one.\n\nRule two.",
      temperature: 1,
      top_p: 0.9,
      stop_sequences: ["A", "B"],
      metadata: { user_id: "u-1" },
      tools: [{ name: "weather", description: "Weather", input_schema: { type: "object" } }],
      tool_choice: { type: "tool", name: "weather", disable_parallel_tool_use: true },
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "What is this?" },
            { type: "image", source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" } },
            { type: "image", source: { type: "url", url: "https://example.com/cat.jpg" } },
            { type: "text", text: "And the weather?" },
          ],
        },
        {
          role: "assistant",
          content: [
            { type: "text", text: "Checking." },
            { type: "tool_use", id: "call_a", name: "weather", input: { city: "Paris" } },
            { type: "tool_use", id: "call_b", name: "time", input: {} },
          ],
        },
        {
          role: "user",
          content: [
            { type: "tool_result", tool_use_id: "call_a", content: "Sunny" },
            { type: "tool_result", tool_use_id: "call_b", content: "Noon" },
          ],
        },
      ],
    });
  });

  test.each([
    ["auto", { type: "auto" }],
    ["none", { type: "none" }],
    ["required", { type: "any" }],
  ])("When tool_choice is %s, then Anthropic gets %j", (choice, expected) => {
    const out = toAnthropicRequest(
      req({
        model: "m",
        messages: [{ role: "user", content: "x" }],
        tools: [{ type: "function", function: { name: "f" } }],
        tool_choice: choice,
      }),
      "m",
    );
    expect(out.tool_choice).toEqual(expected);
    expect(out.tools).toEqual([
      { name: "f", description: undefined, input_schema: { type: "object", properties: {} } },
    ]);
  });

  test("When max tokens are not given, then Anthropic's required max_tokens gets the default", () => {
    expect(toAnthropicRequest(req({ model: "m", messages: [{ role: "user", content: "x" }] }), "m").max_tokens).toBe(
      4096,
    );
  });

  test("When a tool call's arguments are not JSON, then the request is refused with a 400", () => {
    expect(() =>
      toAnthropicRequest(
        req({
          model: "m",
          messages: [
            {
              role: "assistant",
              content: null,
              tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{oops" } }],
            },
          ],
        }),
        "m",
      ),
    ).toThrow(/not valid JSON/);
  });
});

describe("Anthropic → OpenAI responses", () => {
  const message: AnthropicMessage = {
    id: "msg_1",
    type: "message",
    role: "assistant",
    model: "claude-x-20250101",
    content: [
      { type: "text", text: "Let me look. " },
      { type: "text", text: "One moment." },
      { type: "tool_use", id: "toolu_9", name: "weather", input: { city: "Oslo" } },
    ],
    stop_reason: "tool_use",
    stop_sequence: null,
    usage: { input_tokens: 100, output_tokens: 20, cache_read_input_tokens: 40, cache_creation_input_tokens: 10 },
  };

  test("When a message has text and tool use, then one OpenAI choice carries both, with usage counting cache tokens", () => {
    expect(fromAnthropicMessage(message, 123)).toEqual({
      id: "msg_1",
      object: "chat.completion",
      created: 123,
      model: "claude-x-20250101",
      choices: [
        {
          index: 0,
          message: {
            role: "assistant",
            content: "Let me look. One moment.",
            refusal: null,
            tool_calls: [
              { id: "toolu_9", type: "function", function: { name: "weather", arguments: '{"city":"Oslo"}' } },
            ],
          },
          finish_reason: "tool_calls",
          logprobs: null,
        },
      ],
      usage: {
        prompt_tokens: 150,
        completion_tokens: 20,
        total_tokens: 170,
        prompt_tokens_details: { cached_tokens: 40 },
      },
    });
  });

  test.each([
    ["end_turn", "stop"],
    ["stop_sequence", "stop"],
    ["max_tokens", "length"],
    ["tool_use", "tool_calls"],
    ["refusal", "content_filter"],
  ])("When stop_reason is %s, then finish_reason is %s", (stop, finish) => {
    expect(fromAnthropicMessage({ ...message, stop_reason: stop }, 0).choices[0]?.finish_reason).toBe(finish);
  });

  test("When a stream has text and a tool call split across JSON deltas, then the chunks rebuild both and end with usage", () => {
    const translator = new AnthropicToOpenAIStream(7);
    const events = [
      {
        type: "message_start",
        message: {
          ...message,
          content: [],
          usage: { input_tokens: 100, output_tokens: 1, cache_read_input_tokens: 40 },
        },
      },
      { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } },
      { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Hi" } },
      { type: "content_block_stop", index: 0 },
      {
        type: "content_block_start",
        index: 1,
        content_block: { type: "tool_use", id: "toolu_1", name: "weather", input: {} },
      },
      { type: "content_block_delta", index: 1, delta: { type: "input_json_delta", partial_json: '{"ci' } },
      { type: "content_block_delta", index: 1, delta: { type: "input_json_delta", partial_json: 'ty":"Rome"}' } },
      { type: "content_block_stop", index: 1 },
      { type: "message_delta", delta: { stop_reason: "tool_use" }, usage: { output_tokens: 15 } },
      { type: "message_stop" },
    ];
    const chunks = events.flatMap((e) => translator.translate(e));
    expect(chunks[0]?.choices[0]?.delta).toEqual({ role: "assistant", content: "" });
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe("Hi");
    const toolDeltas = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(toolDeltas[0]).toEqual({
      index: 0,
      id: "toolu_1",
      type: "function",
      function: { name: "weather", arguments: "" },
    });
    expect(toolDeltas.map((d) => d.function?.arguments ?? "").join("")).toBe('{"city":"Rome"}');
    expect(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0]?.finish_reason).toBe("tool_calls");
    expect(chunks.at(-1)).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 140, completion_tokens: 15, prompt_tokens_details: { cached_tokens: 40 } },
    });
    expect(new Set(chunks.map((c) => c.id))).toEqual(new Set(["msg_1"]));
  });
});

describe("Anthropic requests → OpenAI (the /v1/messages front)", () => {
  test("When an Anthropic request has system, images, tool use and tool results, then the OpenAI request is equivalent", () => {
    const out = fromAnthropicRequest({
      model: "gpt-4o",
      max_tokens: 64,
      system: [{ type: "text", text: "Sys." }],
      stop_sequences: ["Z"],
      tools: [{ name: "weather", description: "d", input_schema: { type: "object" } }],
      tool_choice: { type: "any", disable_parallel_tool_use: true },
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "Look:" },
            { type: "image", source: { type: "base64", media_type: "image/jpeg", data: "AAAA" } },
          ],
        },
        { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "weather", input: { city: "Rome" } }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "Warm" }] },
      ],
      stream: true,
    });
    expect(out).toEqual({
      model: "gpt-4o",
      max_tokens: 64,
      stop: ["Z"],
      stream: true,
      parallel_tool_calls: false,
      tool_choice: "required",
      tools: [{ type: "function", function: { name: "weather", description: "d", parameters: { type: "object" } } }],
      messages: [
        { role: "system", content: "Sys." },
        {
          role: "user",
          content: [
            { type: "text", text: "Look:" },
            { type: "image_url", image_url: { url: "data:image/jpeg;base64,AAAA" } },
          ],
        },
        {
          role: "assistant",
          content: null,
          tool_calls: [
            { id: "toolu_1", type: "function", function: { name: "weather", arguments: '{"city":"Rome"}' } },
          ],
        },
        { role: "tool", tool_call_id: "toolu_1", content: "Warm" },
      ],
    });
  });

  test("When an OpenAI completion has tool calls, then the Anthropic message has tool_use blocks and stop_reason tool_use", () => {
    const completion = {
      id: "chatcmpl-1",
      object: "chat.completion",
      created: 0,
      model: "gpt-4o",
      choices: [
        {
          index: 0,
          message: {
            role: "assistant",
            content: "Sure.",
            refusal: null,
            tool_calls: [{ id: "call_1", type: "function", function: { name: "f", arguments: '{"a":1}' } }],
          },
          finish_reason: "tool_calls",
          logprobs: null,
        },
      ],
      usage: {
        prompt_tokens: 50,
        completion_tokens: 5,
        total_tokens: 55,
        prompt_tokens_details: { cached_tokens: 20 },
      },
    } as ChatCompletion;
    expect(toAnthropicMessage(completion)).toEqual({
      id: "msg_1",
      type: "message",
      role: "assistant",
      model: "gpt-4o",
      content: [
        { type: "text", text: "Sure." },
        { type: "tool_use", id: "call_1", name: "f", input: { a: 1 } },
      ],
      stop_reason: "tool_use",
      stop_sequence: null,
      usage: { input_tokens: 30, output_tokens: 5, cache_read_input_tokens: 20, cache_creation_input_tokens: 0 },
    });
  });

  test("When OpenAI chunks stream text then a tool call, then Anthropic's event sequence is well-formed", () => {
    const translator = new OpenAIToAnthropicStream("msg_x", "gpt-4o");
    const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
      ({
        id: "c",
        object: "chat.completion.chunk",
        created: 0,
        model: "gpt-4o",
        choices: [{ index: 0, delta, finish_reason: finish }],
      }) as unknown as ChatChunk;
    const events = [
      chunk({ role: "assistant", content: "" }),
      chunk({ content: "Hel" }),
      chunk({ content: "lo" }),
      chunk({ tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "f", arguments: "" } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '{"a":' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: "1}" } }] }),
      chunk({}, "tool_calls"),
      {
        id: "c",
        object: "chat.completion.chunk",
        created: 0,
        model: "gpt-4o",
        choices: [],
        usage: { prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 },
      } as ChatChunk,
    ].flatMap((c) => translator.translate(c));
    events.push(...translator.finish());
    expect(events.map((e) => `${e.type}${e.index !== undefined ? `#${e.index}` : ""}`)).toEqual([
      "message_start",
      "content_block_start#0",
      "content_block_delta#0",
      "content_block_delta#0",
      "content_block_stop#0",
      "content_block_start#1",
      "content_block_delta#1",
      "content_block_delta#1",
      "content_block_stop#1",
      "message_delta",
      "message_stop",
    ]);
    expect(events[5]).toMatchObject({ content_block: { type: "tool_use", id: "call_1", name: "f" } });
    expect(events[9]).toMatchObject({
      delta: { stop_reason: "tool_use" },
      usage: { input_tokens: 9, output_tokens: 4 },
    });
  });
});
