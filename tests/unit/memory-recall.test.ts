import { loadConfig } from "../../src/config";
import { ApiError } from "../../src/errors";
import { KERNELS_WASM, SHARED_KERNELS_WASM } from "../../src/memory/embedded/kernels-wasm";
import { SignCodes } from "../../src/memory/embedded/sign-codes";
import { shareWordVectors, wordVectors } from "../../src/memory/embedders/word-vectors";
import { memberFloor, memoryMessage, recallQuery, selectMemories } from "../../src/memory/recall";
import { relatedCoverage } from "../../src/memory/related-words";
import { memoryControls } from "../../src/memory/service";
import { bm25Document, bm25Query, termId } from "../../src/memory/sparse";
import {
  contextHits,
  type Memory,
  relevanceOf,
  type ScoredMemory,
  withNeighbours,
  withRelatedWords,
} from "../../src/memory/store";
import { approximateTokens, terms } from "../../src/memory/text";

const at = (day: number, minute = 0) => new Date(Date.UTC(2026, 0, day, 9, minute)).toISOString();
function scored(
  text: string,
  score: number,
  createdAt: string,
  conversationId = "c1",
  evidence = { lexical: 1, dense: 0.9, related: 0 },
): ScoredMemory {
  const memory: Memory = { id: text, conversationId, role: "user", text, createdAt, model: null, requestId: text };
  return { memory, score, evidence };
}
const pick = (
  candidates: ScoredMemory[],
  sent: { role: string; content: string }[],
  budgetTokens: number,
  now: number,
) => selectMemories(candidates, sent, { budgetTokens, minRelevance: 1.05, now });

describe("Recall selection", () => {
  const now = Date.parse(at(20));

  test("When the client already sent a memory's text, then it is dropped; the rest fit the budget, oldest first", () => {
    const candidates = [
      scored("I live in Porto", 0.9, at(3)),
      scored("My cat is called Miso", 0.8, at(1)),
      scored(`A long note ${"about gardening ".repeat(100)}`, 0.7, at(2)),
      scored("I run on Tuesdays", 0.1, at(4)),
    ];
    const sent = [{ role: "user", content: "Remember: i live in   PORTO. What should I do today?" }];
    const { chosen } = pick(candidates, sent, 120, now);
    expect(chosen.map((m) => m.text)).toEqual(["My cat is called Miso", "I run on Tuesdays"]);
    expect(approximateTokens(memoryMessage(chosen).content)).toBeLessThanOrEqual(120);
  });

  test("When a long memory's text was sent with other case and spacing, then it is dropped; one that only starts the same is kept", () => {
    const sentence = "Our trip to Σάμος starts on the third of June and we fly from Lisbon at noon";
    const candidates = [
      scored(sentence, 0.9, at(3)),
      scored(`${sentence.slice(0, 60)} and we come back by boat in July`, 0.9, at(4)),
    ];
    const sent = [{ role: "user", content: `Plans:\n${sentence.toUpperCase().replaceAll(" ", "  \n")}. Thoughts?` }];
    expect(pick(candidates, sent, 1_000, now).chosen.map((m) => m.createdAt)).toEqual([at(4)]);
  });

  test("When memories share a conversation and a day, then they share one dated heading and are boosted together", () => {
    const candidates = [
      scored("lone strong match", 1.0, at(5), "c9"),
      scored("session part one", 0.7, at(2, 1), "c1"),
      scored("session part two", 0.7, at(2, 2), "c1"),
      scored("session part three", 0.7, at(2, 3), "c1"),
    ];
    const [first] = pick(candidates, [], 1_000, now).chosen;
    expect(first!.text).toBe("session part one");
    const message = memoryMessage(pick(candidates, [], 1_000, now).chosen).content;
    expect(message.split("\n").slice(2)).toEqual([
      "[2026-01-02 09:01]",
      "user: session part one",
      "user: session part two",
      "user: session part three",
      "[2026-01-05 09:00]",
      "user: lone strong match",
    ]);
    // The group boost reorders the fill, not the output order: the lone match survives a budget for two groups.
    const tight = pick(candidates, [], approximateTokens(message) - 6, now);
    expect(tight.chosen).toHaveLength(3);
  });

  test("When no candidate clears the relevance gate, then nothing is chosen and the selection says it was irrelevant", () => {
    const weak = { lexical: 0.1, dense: 0.7, related: 0 };
    const candidates = [
      scored("I painted a sunrise", 0.9, at(3), "c1", weak),
      scored("We went camping", 0.8, at(4), "c1", weak),
    ];
    expect(pick(candidates, [], 1_000, now)).toEqual({ chosen: [], tokens: 0, irrelevant: true });
    // No candidates at all is not "irrelevant": there was nothing to judge.
    expect(pick([], [], 1_000, now)).toEqual({ chosen: [], tokens: 0, irrelevant: false });
    // The gate is the configured one: 0 lets everything through.
    expect(selectMemories(candidates, [], { budgetTokens: 1_000, minRelevance: 0, now }).chosen).toHaveLength(2);
  });

  test("When a memory says the question in other words, then its related-word coverage lifts it over the gate; an unrelated one stays out", () => {
    // The same search evidence for both: neither shares a word with the question; only one relates to it.
    const candidates = [
      scored("Her dog and her cat sleep all day", 0.5, at(3), "c1", { lexical: 0, dense: 0.6, related: 0.74 }),
      scored("The bond market rallied after the announcement", 0.5, at(4), "c2", {
        lexical: 0,
        dense: 0.6,
        related: 0,
      }),
    ];
    const gate = 1.1;
    const { chosen } = selectMemories(candidates, [], { budgetTokens: 1_000, minRelevance: gate, now });
    expect(chosen.map((m) => m.text)).toEqual(["Her dog and her cat sleep all day"]);
    // What the store is asked for: the member floor, below the gate.
    expect(memberFloor(gate)).toBeCloseTo(gate * 0.7);
  });

  test("When the query clears the gate, then only memories near the gate join the fill, and the budget is a ceiling", () => {
    const candidates = [
      scored("Caroline went to the LGBTQ support group", 0.9, at(3), "c1", { lexical: 0.8, dense: 0.9, related: 0 }),
      scored("Caroline felt accepted there", 0.5, at(3, 1), "c1", { lexical: 0.1, dense: 0.85, related: 0 }),
      scored("unrelated chatter about the weather", 0.4, at(5), "c2", { lexical: 0.05, dense: 0.6, related: 0 }),
    ];
    const selection = pick(candidates, [], 1_000, now);
    expect(selection.chosen.map((m) => m.text)).toEqual([
      "Caroline went to the LGBTQ support group",
      "Caroline felt accepted there",
    ]);
    expect(selection.tokens).toBeGreaterThanOrEqual(approximateTokens(memoryMessage(selection.chosen).content));
    expect(selection.tokens).toBeLessThan(100);
  });

  test("When hits clear the gate, then the turns around the best two join the candidates just after their hit", () => {
    const strong = { lexical: 0.9, dense: 0.9, related: 0.5 };
    const candidates = [
      scored("Where do you keep the spare key?", 0.9, at(3, 1), "c1", strong),
      scored("A weaker match", 0.5, at(4), "c2", { lexical: 0.2, dense: 0.8, related: 0 }),
    ];
    const hits = contextHits(candidates, 1.1);
    expect(hits.map((h) => h.memory.text)).toEqual(["Where do you keep the spare key?"]);
    const answer = scored("Under the blue flowerpot by the door", 0, at(3, 2), "c1", {
      lexical: 0,
      dense: 0,
      related: 0.3,
    });
    const widened = withNeighbours(candidates, hits, [[answer]], (c) => c.memory.id);
    const order = [...widened].sort((a, b) => relevanceOf(b.evidence) - relevanceOf(a.evidence));
    // A neighbour takes a share of its hit's search evidence and keeps its own related-word coverage.
    expect(widened.find((c) => c.memory === answer.memory)!.evidence).toEqual({
      lexical: 0.9 * 0.85,
      dense: 0.9 * 0.85,
      related: 0.3,
    });
    expect(order.map((c) => c.memory.text)).toEqual([
      "Where do you keep the spare key?",
      "Under the blue flowerpot by the door",
      "A weaker match",
    ]);
    // Nothing clears the gate: no hits, so no neighbours are fetched.
    expect(contextHits([candidates[1]!], 1.1)).toEqual([]);
  });

  test("The query is the latest user turn plus a little of the reply before it; relevance is judged on the latest turn", () => {
    const { text: query, focus } = recallQuery([
      { role: "user", content: "first question" },
      { role: "assistant", content: `${"x".repeat(500)}tail of the answer` },
      { role: "user", content: [{ type: "text", text: "follow-up" }] },
    ]);
    expect(query.startsWith("follow-up\n")).toBe(true);
    expect(query).toContain("tail of the answer");
    expect(query.length).toBeLessThan("follow-up\n".length + 301);
    expect(focus).toBe("follow-up");
    // A system prompt before the question is not conversation: it is not part of the query.
    const afterSystem = recallQuery([
      { role: "system", content: "You are a helpful assistant." },
      { role: "user", content: "What is my dog called?" },
    ]);
    expect(afterSystem).toEqual({ text: "What is my dog called?", focus: "What is my dog called?" });
  });
});

describe("Memory budget per request", () => {
  const settings = loadConfig({ NODE_ENV: "test", MEMORY_TOKEN_BUDGET: "1500" }).memory;
  const headers = (values: Record<string, string>) => (name: string) => values[name];

  test("When a request names a budget, then it applies within the tier's ceiling, which MEMORY_TOKEN_BUDGET caps", () => {
    expect(memoryControls(headers({}), settings).budgetTokens).toBe(1500);
    expect(memoryControls(headers({}), settings, 300).budgetTokens).toBe(300);
    expect(memoryControls(headers({}), settings, 9_000).budgetTokens).toBe(1500);
    expect(memoryControls(headers({ "x-perpetual-memory-budget": "200" }), settings, 300).budgetTokens).toBe(200);
    expect(memoryControls(headers({ "x-perpetual-memory-budget": "800" }), settings, 300).budgetTokens).toBe(300);
    expect(memoryControls(headers({ "x-perpetual-memory-budget": "0" }), settings).budgetTokens).toBe(0);
  });

  test.each(["-1", "1.5", "lots", "1e3", "9999999999"])(
    "When the budget header is %p, then it is a 400 naming it",
    (value) => {
      const error = (() => {
        try {
          memoryControls(headers({ "x-perpetual-memory-budget": value }), settings);
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(ApiError);
      expect((error as ApiError).toBody().error).toMatchObject({
        param: "x-perpetual-memory-budget",
        code: "invalid_header",
      });
    },
  );
});

describe("Binary codes for large users", () => {
  /**
   * Codes `count` random int8 vectors; of each noisy query's exact 10 nearest, the share among the `keep` that
   * `codes.nearest` rescores and returns (all of them, best first), which must be in exact order.
   */
  function nearestKept(dims: number, count: number, queries: number, keep: number, seed: number, alive?: Uint8Array) {
    const random = () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647 - 0.5;
    };
    const vectors = new Int8Array(count * dims).map(() => Math.round(random() * 254));
    const codes = new SignCodes(dims, keep);
    codes.rebuild(vectors, count, new Uint8Array(count).fill(1), count);
    let found = 0;
    const sizes = new Set<number>();
    for (let q = 0; q < queries; q++) {
      const query = Float32Array.from(vectors.subarray(q * dims, (q + 1) * dims), (x) => x + random() * 60);
      const dotOf = (slot: number) => {
        let dot = 0;
        for (let d = 0; d < dims; d++) dot += vectors[slot * dims + d]! * query[d]!;
        return dot;
      };
      const exact = Array.from({ length: count }, (_, slot) => [slot, dotOf(slot)] as const)
        .filter(([slot]) => !alive || alive[slot] === 1)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 10)
        .map(([slot]) => slot);
      const returned = codes.nearest(query, count, alive, keep);
      if (alive) expect(returned.every((slot) => alive[slot] === 1)).toBe(true);
      // Rescored in order, up to the kernel's rounding of the query to int16 (half a step per dimension).
      const step = Math.max(...query.map(Math.abs)) / 8_191;
      const rounding = dims * 127 * (step / 2);
      for (let i = 1; i < returned.length; i++) {
        expect(dotOf(returned[i - 1]!)).toBeGreaterThanOrEqual(dotOf(returned[i]!) - rounding);
      }
      sizes.add(returned.length);
      found += exact.filter((slot) => returned.includes(slot)).length;
    }
    return { share: found / (queries * 10), sizes: [...sizes] };
  }

  test("When 30,000 vectors are coded, then the exact 10 nearest are among the candidates kept for rescoring", () => {
    const { share, sizes } = nearestKept(100, 30_000, 20, 2_000, 7, new Uint8Array(30_000).fill(1));
    expect(sizes).toEqual([2_000]);
    expect(share).toBeGreaterThan(0.9);
  });

  test("When some slots are dead, then none of them comes back and the live nearest still do", () => {
    const alive = new Uint8Array(20_000).map((_, slot) => (slot % 3 === 0 ? 0 : 1));
    const { share, sizes } = nearestKept(100, 20_000, 10, 1_000, 5, alive);
    expect(sizes).toEqual([1_000]);
    expect(share).toBeGreaterThan(0.85);
  });

  test("When vectors have more dimensions than a byte can count (1,536), then as many candidates as asked for come back and the exact nearest are among them", () => {
    const { share, sizes } = nearestKept(1536, 3_000, 10, 600, 11);
    expect(sizes).toEqual([600]); // never more than asked for: the rescoring cost is bounded
    expect(share).toBeGreaterThan(0.9);
  });

  test("When the kernels are compiled from kernels.wat, then they are the bytes the store loads", async () => {
    const { compileKernels } = require("../../scripts/build-kernels") as {
      compileKernels(options?: { shared: boolean }): Promise<string>;
    };
    expect(await compileKernels()).toBe(KERNELS_WASM);
    expect(await compileKernels({ shared: true })).toBe(SHARED_KERNELS_WASM);
  });
});

/** Related-word coverage of texts, from their BM25 terms as the stores keep them. */
const coverageOf = (query: string, texts: string[]) =>
  relatedCoverage(
    bm25Query(query).indices,
    texts.map((text) => bm25Document(text).indices),
  );

describe("Related-word coverage", () => {
  test("When a text holds the question's words, says them in other words, or neither, then it covers all, part or none of it", () => {
    const [same, related, unrelated, empty] = coverageOf("Which pets does she have?", [
      "She has two pets at home.",
      "Her dog and her cat sleep all day.",
      "The bond market rallied after the announcement.",
      "",
    ]);
    expect(same).toBeCloseTo(1, 3);
    expect(related).toBeGreaterThan(0.3);
    expect(related).toBeLessThan(1);
    expect(unrelated).toBe(0);
    expect(empty).toBe(0);
  });

  test("When texts share words, then each coverage is what the word vectors' cosines say (the WebAssembly kernel checked against a plain sum)", () => {
    const vectors = wordVectors();
    // Each term stands for its stem's most frequent word.
    const rowsOf = (text: string) => terms(text).map((term) => vectors.termRows.rowOf(termId(term)));
    const cosine = (a: number, b: number) => {
      let dot = 0;
      for (let d = 0; d < vectors.dimensions; d++) {
        dot += vectors.vectors[a * vectors.stride + d]! * vectors.vectors[b * vectors.stride + d]!;
      }
      return Math.min(1, dot / (vectors.scale * vectors.scale));
    };
    const query = "garden tomatoes harvest";
    const texts = [
      "We picked tomatoes and peppers from the garden",
      "The harvest festival had pumpkins",
      "My sister repairs old bicycles",
      "tomatoes tomatoes tomatoes",
    ];
    const queryRows = rowsOf(query);
    expect(queryRows.every((row) => row >= 0)).toBe(true);
    const mass = queryRows.reduce((sum, row) => sum + vectors.weights[row]!, 0);
    const expected = texts.map((text) => {
      const own = rowsOf(text).filter((row) => row >= 0);
      let covered = 0;
      for (const q of queryRows) {
        const best = Math.max(0, ...own.map((row) => cosine(q, row)));
        if (best >= 0.3) covered += vectors.weights[q]! * best;
      }
      return covered / mass;
    });
    const got = coverageOf(query, texts);
    got.forEach((value, i) => {
      expect(value).toBeCloseTo(expected[i]!, 6);
    });
    expect(got[0]).toBeGreaterThan(got[2]!);
  });

  test("When a search has a gate, then only results whose search evidence may reach it with related words are weighed", () => {
    const query = bm25Query("Which pets does she have?").indices;
    const text = { far: "Her dog and her cat sleep all day", near: "Her dog and her cat sleep all day long" };
    const results = [
      { id: "far", evidence: { lexical: 0.2, dense: 0.2 } },
      { id: "near", evidence: { lexical: 0.3, dense: 0.3 } },
    ];
    const read: string[] = [];
    const termsOf = (r: { id: string }) => {
      read.push(r.id);
      return bm25Document(text[r.id as "far" | "near"]).indices;
    };
    const [far, near] = withRelatedWords(results, query, termsOf, 1.5);
    // 0.4 + at most 1 cannot reach 1.5: not weighed, and it keeps 0.
    expect(read).toEqual(["near"]);
    expect(far!.evidence).toEqual({ lexical: 0.2, dense: 0.2, related: 0 });
    expect(near!.evidence.related).toBeGreaterThan(0.3);
    // Without a gate, every result is weighed.
    expect(withRelatedWords(results, query, termsOf)[0]!.evidence.related).toBeCloseTo(near!.evidence.related, 6);
  });

  test("When threads share the word vectors, then each gets a scratch region of its own, given back when released", () => {
    const own = wordVectors().scratch;
    const first = shareWordVectors();
    const second = shareWordVectors();
    const scratches = [own, first.shared.scratch, second.shared.scratch];
    expect(new Set(scratches).size).toBe(3);
    // The same memory and tables: nothing is copied for the other thread.
    expect(first.shared.memory).toBe(wordVectors().kernels.memory);
    expect(first.shared.termRows).toBe(wordVectors().termRows.slots);
    first.release();
    const third = shareWordVectors();
    expect(third.shared.scratch).toBe(first.shared.scratch);
    second.release();
    third.release();
  });

  test("When the question has only stop words, then nothing is covered; when only names outside the vocabulary, they match themselves", () => {
    expect(coverageOf("what was it?", ["it was what it was"])).toEqual([0]);
    expect(coverageOf("Who is Ottilie Zqxjv?", ["Ottilie Zqxjv teaches", "ottilie", "Olga teaches"])).toEqual([
      1, 0.5, 0,
    ]);
    // With a word of the vocabulary beside it, the name is left to BM25's coverage.
    expect(coverageOf("Where does Ottilie teach?", ["Ottilie"])).toEqual([0]);
  });
});
