import type { ChatChunk, ChatCompletion, ChatUsage } from "../providers";

/** `mock_response`: a completion made of the given text, shaped exactly like a provider's. */
export function mockCompletion(
  id: string,
  created: number,
  model: string,
  text: string,
  usage: ChatUsage,
): ChatCompletion {
  return {
    id,
    object: "chat.completion",
    created,
    model,
    choices: [
      { index: 0, message: { role: "assistant", content: text, refusal: null }, finish_reason: "stop", logprobs: null },
    ],
    usage,
  };
}

export async function* mockStream(
  id: string,
  created: number,
  model: string,
  text: string,
  usage: ChatUsage | undefined,
): AsyncIterable<ChatChunk> {
  const chunk = (delta: ChatChunk["choices"][number]["delta"], finish: "stop" | null = null): ChatChunk => ({
    id,
    object: "chat.completion.chunk",
    created,
    model,
    choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
  });
  yield chunk({ role: "assistant", content: "" });
  for (const piece of text.match(/\S+\s*|\s+/g) ?? []) yield chunk({ content: piece });
  yield chunk({}, "stop");
  if (usage) yield { id, object: "chat.completion.chunk", created, model, choices: [], usage };
}
