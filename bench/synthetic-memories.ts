import { readFileSync } from "node:fs";
import { ensureWordVectorCache, WordVectorEmbedder } from "../src/memory/embedders/word-vectors";
import { memoryId } from "../src/memory/outbox";
import { bm25Document } from "../src/memory/sparse";
import type { NewMemory } from "../src/memory/store";

/** Synthetic conversation memories for the benches: deterministic, English words drawn with a Zipf-like skew. */
export class SyntheticMemories {
  private seed = 42;
  private readonly words: string[];
  readonly embedder = new WordVectorEmbedder();
  private readonly now = Date.now();

  constructor() {
    const file = readFileSync(ensureWordVectorCache());
    this.words = file
      .subarray(12, 12 + file.readUInt32LE(8))
      .toString("utf8")
      .split("\n")
      .slice(30, 30_000)
      .filter((w) => /^[a-z]+$/.test(w));
  }

  /** Deterministic pseudo-random numbers in [0, 1), so runs are comparable. */
  random(): number {
    this.seed = (Math.imul(this.seed ^ (this.seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) | 0;
    return ((this.seed >>> 0) % 1_000_000) / 1_000_000;
  }

  sentence(): string {
    const length = 8 + Math.floor(this.random() * 30);
    return Array.from({ length }, () => this.words[Math.floor(this.words.length * this.random() ** 2.5)]!).join(" ");
  }

  /** The n-th memory of a user: one of 50 conversations, dated within the past year. */
  memory(userId: string, n: number): NewMemory {
    const text = this.sentence();
    return {
      id: memoryId(userId, n),
      conversationId: `c${n % 50}`,
      role: n % 2 === 0 ? "user" : "assistant",
      text,
      createdAt: new Date(this.now - this.random() * 365 * 86_400_000).toISOString(),
      model: "gpt-4o",
      requestId: `${userId}-${n}`,
      dense: this.embedder.embedOne(text),
      sparse: bm25Document(text),
    };
  }

  /** Writes `count` memories of a user in batches of 1,000. */
  async load(memories: { upsert(batch: NewMemory[]): Promise<void> }, userId: string, count: number, from = 0) {
    for (let start = from; start < from + count; start += 1_000) {
      const size = Math.min(1_000, from + count - start);
      await memories.upsert(Array.from({ length: size }, (_, i) => this.memory(userId, start + i)));
    }
  }
}
