import { appendFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EmbeddedMemoryStore } from "../../src/memory/embedded-store";
import { chunkText } from "../../src/memory/text";
import { embedder, memoryChunk, searchFor } from "../helpers/memory";

const ALICE = "00000000-0000-4000-8000-00000000000a";
const memory = (text: string, requestId: string, index = 0, conversationId = "c1") =>
  memoryChunk(text, requestId, { index, conversationId });

// Isolation, idempotency and pagination are in the store contract (tests/component/memory-stores.test.ts).
describe("Embedded memory store", () => {
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
    const hits = await second.forUser(ALICE).search(searchFor("Where do I live? Lisbon", "c1"));
    expect(hits[0]!.memory.text).toBe("I moved to Lisbon in March");
    expect(await second.forUser(ALICE).search(searchFor("Lisbon", "other-conversation"))).toEqual([]);
    await second.close();
  });

  test("When the log ends in a torn line (a crash mid-append), then the next start's writes are kept apart from it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mem-"));
    const first = new EmbeddedMemoryStore(dir, "test", embedder.dimensions);
    await first.ready();
    await first.forUser(ALICE).upsert([memory("I keep bees", "r1")]);
    await first.close();
    appendFileSync(join(dir, "memory", "test.ndjson"), '{"op":"put","u":"torn'); // never acknowledged

    const second = new EmbeddedMemoryStore(dir, "test", embedder.dimensions);
    await second.ready();
    await second.forUser(ALICE).upsert([memory("I sail on weekends", "r2")]);
    await second.close();

    const third = new EmbeddedMemoryStore(dir, "test", embedder.dimensions);
    await third.ready();
    const texts = (await third.forUser(ALICE).list({ limit: 10 })).data.map((m) => m.text);
    expect(texts.sort()).toEqual(["I keep bees", "I sail on weekends"]);
    await third.close();
  });

  test("When the store's thread dies, then calls in flight end (never hang), and the next call starts a new thread that has every acknowledged write", async () => {
    const store = new EmbeddedMemoryStore(mkdtempSync(join(tmpdir(), "mem-")), "test", embedder.dimensions);
    await store.ready();
    const alice = store.forUser(ALICE);
    await alice.upsert([memory("I grow tomatoes", "r1")]);
    // Fault injection: the thread is private; terminating it is what a crash inside it looks like from outside.
    const thread = (store as unknown as { thread: { terminate(): Promise<void> } }).thread;
    const inFlight = alice.search(searchFor("tomatoes", "c1"));
    await thread.terminate();
    // Answered before the thread stopped, or failed with the thread: either way it settles.
    const [outcome] = await Promise.allSettled([inFlight]);
    if (outcome!.status === "rejected") expect(String(outcome!.reason)).toMatch(/stopped/);
    expect(await store.connected()).toBe(false);
    const hits = await alice.search(searchFor("tomatoes", "c1"));
    expect(hits[0]!.memory.text).toBe("I grow tomatoes");
    await store.close();
  });

  test("When many writes arrive together, then each resolves once durable and searches are answered meanwhile", async () => {
    const store = new EmbeddedMemoryStore(mkdtempSync(join(tmpdir(), "mem-")), "test", embedder.dimensions);
    await store.ready();
    const alice = store.forUser(ALICE);
    const writes = Array.from({ length: 200 }, (_, i) =>
      alice.upsert([memory(`note number ${i} about otters`, `w${i}`)]),
    );
    const hits = await alice.search(searchFor("otters", "c1"));
    await Promise.all(writes);
    expect(hits.length).toBeGreaterThan(0);
    expect((await alice.list({ limit: 200 })).data).toHaveLength(200);
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
