import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EmbeddedMemoryStore } from "../../src/memory/embedded-store";
import { WordVectorEmbedder } from "../../src/memory/embedders/word-vectors";
import { memoryId } from "../../src/memory/outbox";
import { bm25Document, bm25Query } from "../../src/memory/sparse";
import type { NewMemory } from "../../src/memory/store";
import { chunkText } from "../../src/memory/text";

const embedder = new WordVectorEmbedder();
const ALICE = "00000000-0000-4000-8000-00000000000a";
const BOB = "00000000-0000-4000-8000-00000000000b";

function memory(
  text: string,
  requestId: string,
  index = 0,
  conversationId = "c1",
  createdAt = "2026-01-01T00:00:00.000Z",
): NewMemory {
  return {
    id: memoryId(requestId, index),
    conversationId,
    role: "user",
    text,
    createdAt,
    model: "gpt-4o",
    requestId,
    dense: embedder.embedOne(text),
    sparse: bm25Document(text),
  };
}

const search = (text: string, conversationId?: string) => ({
  dense: embedder.embedOne(text),
  sparse: bm25Query(text),
  limit: 10,
  ...(conversationId && { conversationId }),
});

describe("Embedded memory store", () => {
  test("When two users store overlapping content, then search, list and delete never cross users", async () => {
    const store = new EmbeddedMemoryStore(mkdtempSync(join(tmpdir(), "mem-")), "test", embedder.dimensions);
    await store.ready();
    await store.forUser(ALICE).upsert([memory("My dog Biscuit loves the beach", "a1")]);
    await store.forUser(BOB).upsert([memory("My dog Rex loves the beach", "b1")]);

    const found = await store.forUser(ALICE).search(search("dog beach"));
    expect(found.map((f) => f.memory.text)).toEqual(["My dog Biscuit loves the beach"]);
    expect((await store.forUser(BOB).list({ limit: 10 })).data.map((m) => m.text)).toEqual([
      "My dog Rex loves the beach",
    ]);
    // Alice cannot delete Bob's memory even by its id.
    const bobsId = memoryId("b1", 0);
    expect(await store.forUser(ALICE).delete({ ids: [bobsId] })).toBe(0);
    expect(await store.forUser(BOB).search(search("dog"))).toHaveLength(1);
    expect(await store.forUser(ALICE).delete({ all: true })).toBe(1);
    expect(await store.forUser(BOB).search(search("dog"))).toHaveLength(1);
    await store.close();
  });

  test("When the store is reopened, then writes and deletes are replayed from the log; an upsert of the same id replaces", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mem-"));
    const first = new EmbeddedMemoryStore(dir, "test", embedder.dimensions);
    await first.ready();
    const alice = first.forUser(ALICE);
    await alice.upsert([
      memory("I moved to Lisbon in March", "r1", 0, "c1"),
      memory("I work as a nurse", "r1", 1, "c1"),
    ]);
    await alice.upsert([memory("I moved to Lisbon in March", "r1", 0, "c1")]); // an outbox retry
    await alice.upsert([memory("Tennis on Sundays", "r2", 0, "c2")]);
    expect(await alice.delete({ conversationId: "c2" })).toBe(1);
    await first.close();

    const second = new EmbeddedMemoryStore(dir, "test", embedder.dimensions);
    await second.ready();
    const page = await second.forUser(ALICE).list({ limit: 10 });
    expect(page.data.map((m) => m.text).sort()).toEqual(["I moved to Lisbon in March", "I work as a nurse"]);
    const hits = await second.forUser(ALICE).search(search("Where do I live? Lisbon", "c1"));
    expect(hits[0]!.memory.text).toBe("I moved to Lisbon in March");
    expect(await second.forUser(ALICE).search(search("Lisbon", "other-conversation"))).toEqual([]);
    await second.close();
  });

  test("When many memories are listed, then pages are newest first and continue with `after`", async () => {
    const store = new EmbeddedMemoryStore(mkdtempSync(join(tmpdir(), "mem-")), "test", embedder.dimensions);
    await store.ready();
    const alice = store.forUser(ALICE);
    await alice.upsert(
      Array.from({ length: 5 }, (_, i) => memory(`note ${i}`, `r${i}`, 0, "c1", `2026-01-0${i + 1}T00:00:00.000Z`)),
    );
    const one = await alice.list({ limit: 2 });
    expect(one.data.map((m) => m.text)).toEqual(["note 4", "note 3"]);
    const two = await alice.list({ limit: 2, after: one.next });
    expect(two.data.map((m) => m.text)).toEqual(["note 2", "note 1"]);
    const three = await alice.list({ limit: 2, after: two.next });
    expect(three.data.map((m) => m.text)).toEqual(["note 0"]);
    expect(three.next).toBeUndefined();
    await store.close();
  });
});

describe("Chunking", () => {
  test("When a message is longer than the cap, then it is split on paragraphs and sentences within the cap", () => {
    const paragraph = "This is a sentence about hiking in the Alps. ".repeat(20);
    const chunks = chunkText(`${paragraph}\n\n${paragraph}`, 60);
    expect(chunks.length).toBeGreaterThan(2);
    for (const chunk of chunks) {
      expect(Math.ceil(chunk.length / 4)).toBeLessThanOrEqual(60);
      expect(chunk).toMatch(/\.$/);
    }
    expect(chunks.join(" ").replace(/\s+/g, " ")).toBe(`${paragraph}${paragraph}`.replace(/\s+/g, " ").trim());
    expect(chunkText("short", 60)).toEqual(["short"]);
  });
});
