import { randomBytes } from "node:crypto";
import { encode } from "gpt-tokenizer";
import { countTokens, estimatePromptTokens, estimateTokens } from "../../src/providers/tokens";

const exact = (text: string) => encode(text).length;

/** Varied English-like prose: sentences built from a small vocabulary, numbered so none repeats exactly. */
const prose = (sentences: number) =>
  Array.from({ length: sentences }, (_, i) => {
    const words = ["river", "market", "quietly", "seven", "painted", "Lisbon", "engine", "yesterday", "orange"];
    return `Sentence ${i}: the ${words[i % 9]} ${words[(i * 4) % 9]} was ${words[(i * 7) % 9]}, again.`;
  }).join(" ");

describe("Token estimates", () => {
  test("When the texts are short, then they are counted exactly, part by part, with the chat framing", () => {
    const text = prose(40);
    expect(estimateTokens(text)).toBe(exact(text));
    expect(estimateTokens("")).toBe(0);
    const messages = [{ content: "Hello there" }, { content: [{ type: "text", text }] }];
    expect(estimatePromptTokens(messages)).toBe(3 + 4 * 2 + exact("Hello there") + exact(text));
  });

  test("When a text is megabytes long, then only a bounded sample is tokenized, and the estimate stays close", () => {
    let tokenized = 0;
    const counting = (text: string) => {
      tokenized += text.length;
      return exact(text);
    };
    // 4 MB without spaces (base64): tokenizing it all held the event loop for 14 s.
    const base64 = randomBytes(3_000_000).toString("base64");
    const estimate = countTokens([base64], counting);
    expect(tokenized).toBeLessThanOrEqual(32_768);
    const ratio = exact(base64.slice(0, 200_000)) / 200_000;
    expect(Math.abs(estimate / (ratio * base64.length) - 1)).toBeLessThan(0.05);

    tokenized = 0;
    const long = prose(6_000); // ~400 kB of prose, over several parts
    const parts = [long.slice(0, 100_000), long.slice(100_000, 250_000), long.slice(250_000)];
    const spread = countTokens(parts, counting);
    expect(tokenized).toBeLessThanOrEqual(32_768);
    const truth = parts.reduce((n, part) => n + exact(part), 0);
    expect(Math.abs(spread / truth - 1)).toBeLessThan(0.05);
  });

  test("When a content array has 100,000 parts, then the estimate is bounded too", () => {
    let tokenized = 0;
    const parts = Array.from({ length: 100_000 }, (_, i) => `part ${i} of the array`);
    const estimate = countTokens(parts, (text) => {
      tokenized += text.length;
      return exact(text);
    });
    expect(tokenized).toBeLessThanOrEqual(32_768);
    expect(estimate).toBeGreaterThan(100_000 * 4);
    const messages = [{ content: parts.map((text) => ({ type: "text", text })) }];
    expect(estimatePromptTokens(messages)).toBeGreaterThan(100_000 * 4);
  });
});
