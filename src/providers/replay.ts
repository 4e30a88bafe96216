import type { ChatChunk, ChatCompletion } from "./wire";

/**
 * A finished completion as the chunks a provider would have streamed (mock answers and cache hits): the role, the
 * text in word-sized pieces, each tool call whole, the finish reason, then the usage chunk when `withUsage`.
 */
export async function* replayStream(completion: ChatCompletion, withUsage: boolean): AsyncIterable<ChatChunk> {
  const { id, created, model } = completion;
  const choice = completion.choices[0];
  const chunk = (
    delta: ChatChunk["choices"][number]["delta"],
    finish: ChatChunk["choices"][number]["finish_reason"] = null,
  ): ChatChunk => ({
    id,
    object: "chat.completion.chunk",
    created,
    model,
    choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
  });
  yield chunk({ role: "assistant", content: "" });
  for (const piece of choice?.message.content?.match(/\S+\s*|\s+/g) ?? []) yield chunk({ content: piece });
  for (const [index, call] of (choice?.message.tool_calls ?? []).entries()) {
    if (call.type !== "function") continue;
    yield chunk({ tool_calls: [{ index, id: call.id, type: "function", function: call.function }] });
  }
  yield chunk({}, choice?.finish_reason ?? "stop");
  if (withUsage && completion.usage)
    yield { id, object: "chat.completion.chunk", created, model, choices: [], usage: completion.usage };
}
