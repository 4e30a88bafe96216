import { mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EmbeddedEngine } from "../../src/memory/embedded/engine";
import { UserIndex } from "../../src/memory/embedded/user-index";
import type { Memory, MemorySearch, NewMemory, ScoredMemory } from "../../src/memory/store";
import { embedder, memoryChunk, searchFor } from "../helpers/memory";

const ALICE = "00000000-0000-4000-8000-00000000000a";
const WORDS = "otter lisbon nurse tennis bees garden violin marathon pasta sunrise harbour novel chess kayak".split(
  " ",
);

/** Deterministic sentences over a small vocabulary, so terms repeat across memories as in a real history. */
function sentence(i: number): string {
  return Array.from({ length: 6 }, (_, k) => WORDS[(i * 7 + k * k * 3 + (i >> 3)) % WORDS.length]).join(" ");
}

/** A UserIndex over memories kept in an array: a memory's "log place" is its position there. */
function indexOver(memories: NewMemory[], invertedIndexAfter?: number) {
  const kept: string[] = [];
  const index = new UserIndex(embedder.dimensions, ({ offset }) => kept[offset]!, invertedIndexAfter);
  const put = (m: NewMemory) => {
    const { dense: _dense, sparse: _sparse, ...memory } = m;
    index.put(m, m.dense, m.sparse, {
      offset: kept.push(JSON.stringify(memory)) - 1,
      length: 0,
      memoryAt: 0,
      memoryLength: 0,
    });
  };
  const search = (query: MemorySearch) =>
    index.search(query).map(({ memoryJson, ...scored }) => ({ memory: JSON.parse(memoryJson) as Memory, ...scored }));
  for (const m of memories) put(m);
  return { index, put, search };
}

const summary = (hits: ScoredMemory[]) =>
  hits.map((h) => [h.memory.id, h.score.toFixed(9), h.evidence.lexical.toFixed(9), h.evidence.dense.toFixed(6)]);

describe("Embedded engine: the user index", () => {
  test("When BM25 scans stored terms (small users) or walks posting lists (large ones), then searches rank and score the same, deletions included", () => {
    const memories = Array.from({ length: 300 }, (_, i) =>
      memoryChunk(sentence(i), `r${i}`, { conversationId: `c${i % 4}` }),
    );
    const scanning = indexOver(memories);
    const inverted = indexOver(memories, 0);
    for (const { index } of [scanning, inverted]) {
      index.remove(index.matching({ conversationId: "c3" }));
      index.remove(index.matching({ ids: memories.slice(0, 20).map((m) => m.id) }));
    }
    for (const question of ["otter in lisbon", "chess kayak novel", "violin", "nothing here matches"]) {
      for (const conversationId of [undefined, "c1"]) {
        const query = { ...searchFor(question, conversationId), limit: 20 };
        const expected = summary(scanning.search(query));
        expect(summary(inverted.search(query))).toEqual(expected);
        if (question !== "nothing here matches") expect(expected.length).toBeGreaterThan(0);
      }
    }
  });

  test("When two ids share a hash, then each is found, replaced and deleted as itself", () => {
    // FNV-1a collides on these two ids: the index keeps hashes and must confirm by reading the memory.
    const first = { ...memoryChunk("I keep bees", "r1"), id: "m-329599" };
    const second = { ...memoryChunk("I sail on weekends", "r2"), id: "m-532382" };
    const { index, put } = indexOver([first, second]);
    expect(index.matching({ ids: ["m-532382"] })).toHaveLength(1);
    put({ ...second, text: "I sail on Sundays" }); // the same id again: replaces the second only
    expect(index.live).toBe(2);
    expect(
      index
        .list({ limit: 10 })
        .data.map((m) => m.text)
        .sort(),
    ).toEqual(["I keep bees", "I sail on Sundays"]);
    index.remove(index.matching({ ids: ["m-329599"] }));
    expect(index.list({ limit: 10 }).data.map((m) => m.id)).toEqual(["m-532382"]);
    expect(index.matching({ ids: ["m-329599"] })).toEqual([]);
  });

  test("When most memories are deleted, then the dead slots are reclaimed and what is left is still found, listed and ordered", () => {
    const memories = Array.from({ length: 100 }, (_, i) =>
      memoryChunk(`note ${i} ${sentence(i)}`, `r${i}`, {
        index: 0,
        createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
      }),
    );
    const { index, search } = indexOver(memories);
    index.remove(index.matching({ ids: memories.filter((_, i) => i % 5 !== 0).map((m) => m.id) }));
    index.reclaimIfSparse();
    expect(index.live).toBe(20);
    const listed = index.list({ limit: 100 }).data.map((m) => m.text);
    expect(listed).toEqual(
      memories
        .filter((_, i) => i % 5 === 0)
        .map((m) => m.text)
        .reverse(),
    );
    const [hit] = search(searchFor(memories[45]!.text));
    expect(hit!.memory.text).toBe(memories[45]!.text);
    // Write order is kept through the reclaim: the neighbours of note 45 are notes 40 and 50.
    expect(index.neighbours(memories[45]!.id).map((m) => m.text)).toEqual([memories[40]!.text, memories[50]!.text]);
  });

  test("When conversations interleave and memories are written, replaced, deleted and reclaimed, then each memory's neighbours are the nearest live turns of its own conversation in write order, and each conversation lists its live memories", () => {
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return Math.floor((seed / 2 ** 31) * n); // the high bits: an LCG's low bits repeat with a short period
    };
    const { index, put } = indexOver([]);
    // The reference: live memories in write order (a replaced memory moves to the end, as it is written again).
    let written: NewMemory[] = [];
    for (let step = 0; step < 600; step++) {
      const action = random(10);
      if (action < 9 || written.length === 0) {
        const i = random(150);
        const memory = memoryChunk(`turn ${i} ${sentence(i)}`, `r${i}`, { conversationId: `c${random(3)}` });
        written = written.filter((m) => m.id !== memory.id).concat(memory);
        put(memory);
      } else {
        const gone = written.filter(() => random(3) === 0).map((m) => m.id);
        written = written.filter((m) => !gone.includes(m.id));
        index.remove(index.matching({ ids: gone }));
        index.reclaimIfSparse();
      }
      for (const memory of written) {
        const same = written.filter((m) => m.conversationId === memory.conversationId);
        const at = same.indexOf(memory);
        const expected = [same[at - 1], same[at + 1]].filter((m) => m !== undefined).map((m) => m.text);
        expect(index.neighbours(memory.id).map((m) => m.text)).toEqual(expected);
      }
      // A conversation's memories are read along the same links.
      for (const conversationId of ["c0", "c1", "c2"]) {
        const listed = index.list({ conversationId, limit: 1_000 }).data.map((m) => m.id);
        const live = written.filter((m) => m.conversationId === conversationId).map((m) => m.id);
        expect(listed.sort()).toEqual(live.sort());
      }
    }
  });
});

describe("Embedded engine: the log", () => {
  test("When a deletion by request, by conversation or of everything is replayed, then it covers what it covered when made", async () => {
    const dir = mkdtempSync(join(tmpdir(), "engine-"));
    const engine = new EmbeddedEngine(dir, "test", embedder.dimensions);
    await engine.open();
    const BOB = "00000000-0000-4000-8000-00000000000b";
    await engine.upsert(ALICE, [
      memoryChunk("I moved to Lisbon", "r1", { index: 0 }),
      memoryChunk("Lisbon is sunny", "r1", { index: 1 }),
      memoryChunk("I play tennis", "r2", { conversationId: "c2" }),
      memoryChunk("I keep bees", "r3"),
    ]);
    await engine.upsert(BOB, [memoryChunk("I collect stamps", "r9")]);
    expect(await engine.delete(ALICE, { requestId: "r1" })).toBe(2);
    expect(await engine.delete(ALICE, { conversationId: "c2" })).toBe(1);
    expect(await engine.delete(BOB, { all: true })).toBe(1);
    // Written after the deletions: a replay must not apply them to it.
    await engine.upsert(ALICE, [memoryChunk("I moved to Porto", "r1", { index: 0 })]);
    await engine.close();

    const reopened = new EmbeddedEngine(dir, "test", embedder.dimensions);
    await reopened.open();
    expect(
      reopened
        .list(ALICE, { limit: 10 })
        .data.map((m) => m.text)
        .sort(),
    ).toEqual(["I keep bees", "I moved to Porto"]);
    expect(reopened.list(BOB, { limit: 10 }).data).toEqual([]);
    await reopened.close();
  });

  test("When the log is mostly deletions, then opening compacts it and every memory is read back from its new place", async () => {
    const dir = mkdtempSync(join(tmpdir(), "engine-"));
    const log = join(dir, "memory", "test.ndjson");
    const engine = new EmbeddedEngine(dir, "test", embedder.dimensions);
    await engine.open();
    const memories = Array.from({ length: 1_200 }, (_, i) =>
      memoryChunk(`entry ${i}: ${sentence(i)}`, `r${i}`, { conversationId: i % 6 === 1 ? "kept" : "dropped" }),
    );
    await engine.upsert(ALICE, memories);
    // Retried writes: replaying them reads the first copies back (the first line, at offset 0, among them), and the
    // compaction then moves another memory to offset 0 — what was read before must not be served for it.
    await engine.upsert(ALICE, memories.slice(0, 10));
    await engine.delete(ALICE, { conversationId: "dropped" });
    const textOf = new Map(memories.filter((_, i) => i % 6 === 1).map((m) => [m.id, m.text]));
    await engine.close();
    const before = statSync(log).size;

    for (let round = 0; round < 2; round++) {
      const reopened = new EmbeddedEngine(dir, "test", embedder.dimensions);
      await reopened.open();
      expect(statSync(log).size).toBeLessThan(before / 4);
      const listed = reopened.list(ALICE, { limit: 1_000 }).data.map((m) => m.text);
      expect(listed.sort()).toEqual([...textOf.values()].sort());
      // Read back from where the compaction put it: the hit is one of the kept memories, with its own text.
      const [hit] = JSON.parse(reopened.search(ALICE, searchFor(memories[600]!.text))) as ScoredMemory[];
      expect(hit!.memory.text).toBe(textOf.get(hit!.memory.id));
      expect(hit!.memory.text.endsWith(memories[600]!.text.split(": ")[1]!)).toBe(true);
      // Appends after a compaction land after the copied lines and are read back too.
      const late = memoryChunk(`late ${round}`, `late${round}`, { conversationId: "kept" });
      await reopened.upsert(ALICE, [late]);
      textOf.set(late.id, late.text);
      expect(reopened.list(ALICE, { limit: 1 }).data).toHaveLength(1);
      await reopened.close();
    }
  });
});
