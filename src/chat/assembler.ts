import type { ChatChunk, ChatCompletion } from "../providers";

/**
 * Rebuilds the completion a stream carried (text, tool calls, finish reason, usage) while passing its chunks on
 * untouched: what the response cache keeps of a streamed answer.
 */
export class CompletionAssembler {
  private first: ChatChunk | undefined;
  private text = "";
  private readonly calls = new Map<number, { id: string; name: string; arguments: string }>();
  private finishReason: ChatCompletion["choices"][number]["finish_reason"] | null = null;
  private usage: ChatCompletion["usage"];

  async *watch(source: AsyncIterable<ChatChunk>): AsyncIterable<ChatChunk> {
    for await (const chunk of source) {
      this.first ??= chunk;
      if (chunk.usage) this.usage = chunk.usage;
      const choice = chunk.choices[0];
      if (choice) {
        if (choice.delta?.content) this.text += choice.delta.content;
        if (choice.finish_reason) this.finishReason = choice.finish_reason;
        for (const call of choice.delta?.tool_calls ?? []) {
          const known = this.calls.get(call.index) ?? { id: "", name: "", arguments: "" };
          if (call.id) known.id = call.id;
          if (call.function?.name) known.name += call.function.name;
          if (call.function?.arguments) known.arguments += call.function.arguments;
          this.calls.set(call.index, known);
        }
      }
      yield chunk;
    }
  }

  /** The whole completion, or undefined when the stream did not finish (no finish reason). */
  completion(): ChatCompletion | undefined {
    if (!this.first || !this.finishReason) return undefined;
    const toolCalls = [...this.calls.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([, c]) => ({ id: c.id, type: "function" as const, function: { name: c.name, arguments: c.arguments } }));
    return {
      id: this.first.id,
      object: "chat.completion",
      created: this.first.created,
      model: this.first.model,
      choices: [
        {
          index: 0,
          message: {
            role: "assistant",
            content: this.text || null,
            refusal: null,
            ...(toolCalls.length > 0 && { tool_calls: toolCalls }),
          },
          finish_reason: this.finishReason,
          logprobs: null,
        },
      ],
      ...(this.usage && { usage: this.usage }),
    };
  }
}
