import { ChatToResponseEvents, inputMessages, toChatRequest, toResponse } from "../../src/chat/responses";
import { ApiError } from "../../src/errors";
import type { ChatChunk, ChatCompletion } from "../../src/providers";

const context = { id: `resp_${"a".repeat(32)}`, createdAt: 1_700_000_000, request: { model: "gpt-4o", input: "hi" } };

const chunk = (delta: Record<string, unknown>, finish: string | null = null): ChatChunk =>
  ({
    id: "c",
    object: "chat.completion.chunk",
    created: 1,
    model: "gpt-4o",
    choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
  }) as ChatChunk;

describe("Responses API translation", () => {
  test("When a stream has text, then a tool call, and stops at the token limit, then items are closed in order and the response is incomplete", () => {
    const events = new ChatToResponseEvents(context);
    const all = [
      ...events.start(),
      ...events.translate(chunk({ content: "Let me check." })),
      ...events.translate(
        chunk({
          tool_calls: [{ index: 0, id: "call_9", type: "function", function: { name: "f", arguments: '{"a"' } }],
        }),
      ),
      ...events.translate(chunk({ tool_calls: [{ index: 0, function: { arguments: ":1}" } }] }, "length")),
    ];
    const { events: closing, response } = events.finish();
    const types = [...all, ...closing].map((e) => e.type);
    expect(types).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      // the message closes before the call opens
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.output_item.added",
      "response.function_call_arguments.delta",
      "response.function_call_arguments.delta",
      "response.function_call_arguments.done",
      "response.output_item.done",
      "response.incomplete",
    ]);
    expect([...all, ...closing].map((e) => e.sequence_number)).toEqual(types.map((_, i) => i));
    expect(response).toMatchObject({ status: "incomplete", incomplete_details: { reason: "max_output_tokens" } });
    expect((response.output as Array<{ type: string }>).map((item) => item.type)).toEqual(["message", "function_call"]);
    expect(response.output).toContainEqual(expect.objectContaining({ call_id: "call_9", arguments: '{"a":1}' }));
  });

  test("When a completion refuses, then the output is a refusal part", () => {
    const completion = {
      id: "c",
      object: "chat.completion",
      created: 1,
      model: "gpt-4o",
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: null, refusal: "I can't.", tool_calls: undefined },
          finish_reason: "stop",
          logprobs: null,
        },
      ],
    } as unknown as ChatCompletion;
    const response = toResponse(context, completion);
    expect(response.output).toEqual([
      expect.objectContaining({ type: "message", content: [{ type: "refusal", refusal: "I can't." }] }),
    ]);
  });

  test("When an assistant turn is followed by two function calls and their outputs, then one assistant message carries both calls", () => {
    expect(
      inputMessages([
        { role: "user", content: "go" },
        { role: "assistant", content: [{ type: "output_text", text: "Calling." }] },
        { type: "function_call", call_id: "c1", name: "a", arguments: "{}" },
        { type: "function_call", call_id: "c2", name: "b", arguments: "{}" },
        { type: "function_call_output", call_id: "c1", output: "1" },
        { type: "function_call_output", call_id: "c2", output: [{ type: "input_text", text: "2" }] },
      ]),
    ).toEqual([
      { role: "user", content: "go" },
      {
        role: "assistant",
        content: "Calling.",
        tool_calls: [
          { id: "c1", type: "function", function: { name: "a", arguments: "{}" } },
          { id: "c2", type: "function", function: { name: "b", arguments: "{}" } },
        ],
      },
      { role: "tool", tool_call_id: "c1", content: "1" },
      { role: "tool", tool_call_id: "c2", content: "2" },
    ]);
  });

  test("When a part type cannot be carried, then it is a 400 naming it", () => {
    const error = (() => {
      try {
        toChatRequest({ model: "m", input: [{ role: "user", content: [{ type: "input_file", file_id: "f" }] }] }, []);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).toBody().error).toMatchObject({
      param: "input[0].content[0].type",
      code: "unsupported_content",
    });
  });
});
