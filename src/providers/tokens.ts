import { encode } from "gpt-tokenizer";
import { textParts } from "./wire";

/**
 * A tokenizer estimate (o200k_base, GPT-4o's encoding) for when a provider reports no usage. Marked as estimated
 * wherever it is stored; never used when the provider gives real numbers.
 */
export function estimateTokens(text: string): number {
  return text === "" ? 0 : encode(text).length;
}

/** Roughly OpenAI's accounting: content tokens plus a few per message for the chat framing. */
export function estimatePromptTokens(messages: ReadonlyArray<{ content?: unknown }>): number {
  let total = 3;
  for (const m of messages) {
    total += 4;
    for (const part of textParts(m.content)) total += estimateTokens(part);
  }
  return total;
}
