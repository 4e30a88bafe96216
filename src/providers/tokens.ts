import { encode } from "gpt-tokenizer";
import { textParts } from "./wire";

/**
 * A tokenizer estimate (o200k_base, GPT-4o's encoding) for when a provider reports no usage. Marked as estimated
 * wherever it is stored; never used when the provider gives real numbers.
 */
export function estimateTokens(text: string): number {
  return countTokens([text]);
}

/** Roughly OpenAI's accounting: content tokens plus a few per message for the chat framing. */
export function estimatePromptTokens(messages: ReadonlyArray<{ content?: unknown }>): number {
  const parts: string[] = [];
  for (const m of messages) for (const part of textParts(m.content)) parts.push(part);
  return 3 + 4 * messages.length + countTokens(parts);
}

/**
 * Up to this many characters are tokenized exactly. Past it, SAMPLES evenly spaced windows of the texts are, and
 * their tokens per character scale to the whole: BPE on the event loop costs ~1 ms per kilobyte of text without
 * spaces (4 MB of base64 held it for 14 s), and an estimate does not need every token counted.
 */
const EXACT_CHARS = 32_768;
const SAMPLES = 16;

/** o200k tokens of these texts, exact up to EXACT_CHARS characters in all, else extrapolated from samples. */
export function countTokens(texts: readonly string[], tokenize: (text: string) => number = o200k): number {
  let chars = 0;
  for (const text of texts) chars += text.length;
  if (chars <= EXACT_CHARS) return texts.reduce((n, text) => n + (text === "" ? 0 : tokenize(text)), 0);
  const all = texts.join("\n");
  const width = EXACT_CHARS / SAMPLES;
  const step = (all.length - width) / (SAMPLES - 1);
  let sampled = 0;
  for (let k = 0; k < SAMPLES; k++) {
    const from = Math.round(k * step);
    sampled += tokenize(all.slice(from, from + width));
  }
  // Scaled to the texts' own characters (the joining newlines are only there to sample across boundaries).
  return Math.round((sampled / EXACT_CHARS) * chars);
}

const o200k = (text: string) => encode(text).length;
