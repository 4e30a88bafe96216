import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EmbeddedMemoryStore } from "../../src/memory/embedded-store";
import { memoryId } from "../../src/memory/outbox";
import { QdrantMemoryStore } from "../../src/memory/qdrant-store";
import { InvalidCursorError, type MemoryStore, relevanceOf } from "../../src/memory/store";
import { type FakeQdrant, startFakeQdrant } from "../fakes/qdrant-server";
import { embedder, memoryChunk, searchFor } from "../helpers/memory";

const ALICE = "00000000-0000-4000-8000-00000000000a";
const BOB = "00000000-0000-4000-8000-00000000000b";
const memory = memoryChunk;
const search = searchFor;

let qdrant: FakeQdrant;
beforeAll(async () => {
  qdrant = await startFakeQdrant();
});
afterAll(() => qdrant.close());

const stores: [string, () => Promise<MemoryStore>][] = [
  [
    "embedded",
    async () => new EmbeddedMemoryStore(mkdtempSync(join(tmpdir(), "mem-")), "perpetual_test", embedder.dimensions),
  ],
  [
    "qdrant",
    async () =>
      new QdrantMemoryStore({ url: qdrant.url }, `perpetual_test_${Math.random().toString(36).slice(2)}`, 100),
  ],
];

describe.each(stores)("Memory store contract: %s", (_kind, open) => {
  let store: MemoryStore;
  beforeEach(async () => {
    store = await open();
    await store.ready();
  });
  afterEach(async () => {
    await store.close();
    expect(qdrant.violations).toEqual([]);
  });

  test("When two users store overlapping content, then search, list and delete never cross users", async () => {
    await store.forUser(ALICE).upsert([memory("My dog Biscuit loves the beach", "a1")]);
    await store.forUser(BOB).upsert([memory("My dog Rex loves the beach", "b1")]);

    const found = await store.forUser(ALICE).search(search("dog beach"));
    expect(found.map((f) => f.memory.text)).toEqual(["My dog Biscuit loves the beach"]);
    expect((await store.forUser(BOB).list({ limit: 10 })).data.map((m) => m.text)).toEqual([
      "My dog Rex loves the beach",
    ]);
    // Alice cannot delete Bob's memory, even by its id, nor reach it through a conversation id they share.
    expect(await store.forUser(ALICE).delete({ ids: [memoryId("b1", 0)] })).toBe(0);
    expect(await store.forUser(ALICE).delete({ requestId: "b1" })).toBe(0);
    expect(await store.forUser(BOB).search(search("dog"))).toHaveLength(1);
    expect(await store.forUser(ALICE).delete({ conversationId: "c1" })).toBe(1);
    expect(await store.forUser(ALICE).search(search("dog beach"))).toEqual([]);
    expect((await store.forUser(BOB).list({ limit: 10 })).data).toHaveLength(1);
    expect(await store.forUser(BOB).delete({ all: true })).toBe(1);
  });

  test("When the same chunk is written twice, then it is stored once; scope=conversation searches one conversation", async () => {
    const alice = store.forUser(ALICE);
    await alice.upsert([
      memory("I moved to Lisbon in March", "r1", { conversationId: "c1" }),
      memory("I work as a nurse in a children's hospital", "r1", { index: 1, conversationId: "c1" }),
    ]);
    await alice.upsert([memory("I moved to Lisbon in March", "r1", { conversationId: "c1" })]);
    await alice.upsert([memory("Tennis on Sundays in Lisbon", "r2", { conversationId: "c2" })]);
    expect((await alice.list({ limit: 10 })).data).toHaveLength(3);

    const hits = await alice.search(search("Where do I live? Lisbon"));
    expect(hits.map((h) => h.memory.text)).toContain("I moved to Lisbon in March");
    expect(hits[0]!.score).toBeGreaterThan(0);
    const scoped = await alice.search(search("Lisbon", "c2"));
    expect(scoped.map((h) => h.memory.text)).toEqual(["Tennis on Sundays in Lisbon"]);
    const first = hits.find((h) => h.memory.requestId === "r1" && h.memory.role === "user")!.memory;
    expect(first).toEqual({
      id: memoryId("r1", 0),
      conversationId: "c1",
      role: "user",
      text: "I moved to Lisbon in March",
      createdAt: "2026-01-01T00:00:00.000Z",
      model: "gpt-4o",
      requestId: "r1",
    });
    expect(await alice.delete({ requestId: "r1" })).toBe(2);
  });

  test("When a search returns memories, then each carries absolute relevance evidence: query coverage and cosine", async () => {
    const alice = store.forUser(ALICE);
    await alice.upsert([
      memory("I repaint pottery bowls with a cobalt glaze", "e1"),
      memory("We watched the football final at my brother's flat", "e1", { index: 1 }),
    ]);
    const [best, other] = await alice.search(search("cobalt glaze pottery"));
    expect(best!.memory.text).toBe("I repaint pottery bowls with a cobalt glaze");
    expect(best!.evidence.lexical).toBeCloseTo(1, 5);
    expect(best!.evidence.dense).toBeGreaterThan(0.5);
    expect(other!.evidence.lexical).toBe(0);
    // A question about something never discussed covers none of its words, whatever ranks first.
    const offTopic = await alice.search(search("capital of Australia"));
    expect(offTopic.every((hit) => hit.evidence.lexical === 0)).toBe(true);
    // Half of the question's rare words: partial coverage, strictly between.
    const [partial] = await alice.search(search("cobalt telescope"));
    expect(partial!.evidence.lexical).toBeGreaterThan(0.3);
    expect(partial!.evidence.lexical).toBeLessThan(0.7);
  });

  test("When a memory says the question in other words, then its evidence carries related-word coverage; an unrelated one has none", async () => {
    const alice = store.forUser(ALICE);
    await alice.upsert([
      memory("Her dog and her cat sleep all day", "w1"),
      memory("The bond market rallied after the announcement", "w1", { index: 1 }),
      memory("She has two pets at home", "w1", { index: 2 }),
    ]);
    const hits = await alice.search(search("Which pets does she have?"));
    const of = (start: string) => hits.find((h) => h.memory.text.startsWith(start))!.evidence;
    expect(of("She has two pets").related).toBeCloseTo(1, 3);
    expect(of("Her dog").lexical).toBe(0);
    expect(of("Her dog").related).toBeGreaterThan(0.3);
    expect(of("Her dog").related).toBeLessThan(1);
    expect(of("The bond market").related).toBe(0);
  });

  test("When a search sets minRelevance, then only results that reach it come back, but always the most relevant one", async () => {
    const alice = store.forUser(ALICE);
    await alice.upsert([
      memory("I repaint pottery bowls with a cobalt glaze", "m1"),
      memory("We watched the football final at my brother's flat", "m1", { index: 1 }),
      memory("The cobalt glaze cracked in the kiln", "m1", { index: 2 }),
    ]);
    const all = await alice.search(search("cobalt glaze pottery"));
    expect(all).toHaveLength(3);
    const relevant = await alice.search({ ...search("cobalt glaze pottery"), minRelevance: 1 });
    expect(relevant.map((h) => h.memory.text).sort()).toEqual(
      all
        .filter((h) => relevanceOf(h.evidence) >= 1)
        .map((h) => h.memory.text)
        .sort(),
    );
    expect(relevant.map((h) => h.memory.text)).not.toContain("We watched the football final at my brother's flat");
    // Nothing reaches it: the single most relevant comes back, so "nothing relevant" differs from "nothing stored".
    const offTopic = await alice.search({ ...search("capital of Australia"), minRelevance: 1.5 });
    expect(offTopic).toHaveLength(1);
    expect(relevanceOf(offTopic[0]!.evidence)).toBeLessThan(1.5);
    const best = (await alice.search(search("capital of Australia"))).reduce((a, b) =>
      relevanceOf(b.evidence) > relevanceOf(a.evidence) ? b : a,
    );
    expect(offTopic[0]!.memory.id).toBe(best.memory.id);
  });

  test("When neighbours are asked for, then each memory gets the turns written just before and after it in its own conversation, never another user's", async () => {
    const alice = store.forUser(ALICE);
    const at = (minute: number) => `2026-01-01T10:${String(minute).padStart(2, "0")}:00.000Z`;
    const turn = (text: string, index: number, conversationId: string, minute: number) =>
      memory(text, `n-${conversationId}`, { index, conversationId, createdAt: at(minute) });
    const session = [
      turn("Where should we go hiking?", 0, "s1", 1),
      turn("The ridge trail above the lake", 1, "s1", 2),
      turn("Bring the red tent", 2, "s1", 3),
    ];
    await alice.upsert([...session, turn("Other chat in between", 0, "s2", 2)]);
    await store
      .forUser(BOB)
      .upsert([memory("Bob's turn at the same minute", "bob", { conversationId: "s1", createdAt: at(2) })]);
    const [middle, first, last] = await alice.neighbours([session[1]!, session[0]!, session[2]!]);
    expect(middle!.map((m) => m.text).sort()).toEqual(["Bring the red tent", "Where should we go hiking?"]);
    expect(first!.map((m) => m.text)).toEqual(["The ridge trail above the lake"]);
    expect(last!.map((m) => m.text)).toEqual(["The ridge trail above the lake"]);
    // A deleted neighbour is skipped over; asked about Bob's memory, Alice's store answers with Alice's only.
    await alice.delete({ ids: [session[1]!.id] });
    const [afterDelete] = await alice.neighbours([session[0]!]);
    expect(afterDelete!.map((m) => m.text)).toEqual(["Bring the red tent"]);
    const bobs = (await store.forUser(BOB).list({ limit: 1 })).data[0]!;
    const [aroundBobs] = await alice.neighbours([bobs]);
    expect(aroundBobs!.every((m) => !m.text.startsWith("Bob"))).toBe(true);
    const [bobAround] = await store.forUser(BOB).neighbours([session[0]!]);
    expect(bobAround!.every((m) => m.text.startsWith("Bob"))).toBe(true);
  });

  test("When a search sets contextFrom, then the turns around its best hits come with it, ranked just after their hit, and only when a hit reaches it", async () => {
    const alice = store.forUser(ALICE);
    const at = (minute: number) => `2026-01-01T10:${String(minute).padStart(2, "0")}:00.000Z`;
    await alice.upsert([
      memory("Which hiking boots did you buy?", "h-s1", { index: 0, conversationId: "s1", createdAt: at(1) }),
      memory("Other chat in between", "h-s2", { index: 0, conversationId: "s2", createdAt: at(2) }),
      memory("The leather ones from the outlet", "h-s1", { index: 1, conversationId: "s1", createdAt: at(3) }),
    ]);
    await store
      .forUser(BOB)
      .upsert([memory("Bob's reply in his s1", "bob", { conversationId: "s1", createdAt: at(2) })]);
    const [hit] = await alice.search(search("hiking boots"));
    expect(hit!.memory.text).toBe("Which hiking boots did you buy?");
    const gate = relevanceOf(hit!.evidence);
    const widened = await alice.search({ ...search("hiking boots"), minRelevance: gate, contextFrom: gate });
    expect(widened.map((r) => r.memory.text)).toEqual([
      "Which hiking boots did you buy?",
      "The leather ones from the outlet",
    ]);
    expect(widened[1]!.score).toBe(hit!.score);
    // A share of its hit's search evidence, and its own related-word coverage ("leather" ~ "boots").
    expect(widened[1]!.evidence.lexical).toBeCloseTo(0.85 * hit!.evidence.lexical, 6);
    expect(widened[1]!.evidence.dense).toBeCloseTo(0.85 * hit!.evidence.dense, 6);
    const [own] = (await alice.search(search("hiking boots"))).filter((r) => r.memory.text.startsWith("The leather"));
    expect(widened[1]!.evidence.related).toBeCloseTo(own!.evidence.related, 6);
    // No hit reaches the context gate: the results alone.
    const alone = await alice.search({ ...search("hiking boots"), minRelevance: gate, contextFrom: gate + 0.01 });
    expect(alone.map((r) => r.memory.text)).toEqual(["Which hiking boots did you buy?"]);
  });

  test("When memories are listed, then pages are newest first, continue with the cursor even across equal timestamps and deletions", async () => {
    const alice = store.forUser(ALICE);
    const at = (day: number) => `2026-01-0${day}T00:00:00.000Z`;
    await alice.upsert([
      ...[1, 2, 3, 4].map((d) => memory(`note ${d}`, `n${d}`, { createdAt: at(d) })),
      // Three memories share one timestamp: pagination must neither skip nor repeat them.
      ...["a", "b", "c"].map((x, i) => memory(`tie ${x}`, "tie", { index: i, createdAt: at(5) })),
      memory("other conversation", "o1", { conversationId: "c9", createdAt: at(6) }),
    ]);
    const seen: string[] = [];
    let after: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const page = await alice.list({ limit: 2, after, conversationId: "c1" });
      seen.push(...page.data.map((m) => m.text));
      if (pages === 0) await alice.delete({ ids: [memoryId("n4", 0)] }); // deleted between pages
      after = page.next;
      if (!after) break;
    }
    expect(seen.slice(0, 2).every((t) => t.startsWith("tie"))).toBe(true);
    expect(seen.slice(3)).toEqual(["note 3", "note 2", "note 1"]);
    expect(new Set(seen.slice(0, 3))).toEqual(new Set(["tie a", "tie b", "tie c"]));
    await expect(alice.list({ limit: 2, after: "not-a-cursor" })).rejects.toBeInstanceOf(InvalidCursorError);
    await alice.delete({ all: true });
  });

  test("When opened again (another start, another replica), then ready() is idempotent and the data is there", async () => {
    await store.forUser(ALICE).upsert([memory("remember the milk", "m1")]);
    await store.ready();
    expect(await store.connected()).toBe(true);
    expect((await store.forUser(ALICE).search(search("milk")))[0]!.memory.text).toBe("remember the milk");
    await store.forUser(ALICE).delete({ all: true });
  });

  test("The store's interface has no way to query without a user: every read and delete goes through forUser", () => {
    const methods = Object.getOwnPropertyNames(Object.getPrototypeOf(store)).filter((m) => m !== "constructor");
    expect(methods.sort()).toEqual(
      ["close", "connected", "forUser", "ready", "siblings", ...(store.kind === "embedded" ? internals : [])].sort(),
    );
  });
});
// The embedded store only forwards calls to its thread: each carries the user id (see embedded/protocol.ts).
const internals = ["call"];

describe("Qdrant adapter requests", () => {
  test("When the adapter starts and is used, then collection, indexes and every query follow the design, and all requests match Qdrant's OpenAPI document", async () => {
    const name = "perpetual_memory_shape";
    const first = new QdrantMemoryStore({ url: qdrant.url }, name, 100);
    const second = new QdrantMemoryStore({ url: qdrant.url }, name, 100);
    await Promise.all([first.ready(), second.ready()]);
    await first.ready();
    const collection = qdrant.collections.get(name)!;
    expect(collection.config).toEqual({
      vectors: { dense: { size: 100, distance: "Cosine" } },
      sparse_vectors: { bm25: { modifier: "idf" } },
    });
    expect(collection.indexes).toEqual({
      user_id: { type: "keyword", is_tenant: true },
      conversation_id: "keyword",
      request_id: "keyword",
      created_at: "datetime",
    });

    const start = qdrant.requests.length;
    const alice = first.forUser(ALICE);
    await alice.upsert([memory("We adopted a puppy named Biscuit", "p1")]);
    await alice.search(search("puppy"));
    await alice.search(search("puppy", "c1"));
    await alice.list({ limit: 5, conversationId: "c1" });
    await alice.delete({ ids: [memoryId("p1", 0)] });
    await alice.delete({ all: true });

    const tenant = { key: "user_id", match: { value: ALICE } };
    const reads = qdrant.requests.slice(start).filter((r) => r.method === "post");
    expect(reads.map((r) => r.path.split("/").slice(3).join("/"))).toEqual([
      "points/query/batch",
      "points/query/batch",
      "points/scroll",
      "points/count",
      "points/delete",
      "points/count", // nothing left: no delete is sent
    ]);
    // Every read carries the tenant filter first: at the top level, or in each search of a batch.
    for (const { body } of reads) {
      const scoped = (body!.searches as { filter: { must: unknown[] } }[] | undefined) ?? [body!];
      for (const part of scoped) expect((part.filter as { must: unknown[] }).must[0]).toEqual(tenant);
    }
    const [query, inConversation] = reads;
    const searches = query!.body!.searches as { using: string; limit: number }[];
    expect(searches.map((s) => [s.using, s.limit])).toEqual([
      ["dense", 100],
      ["bm25", 100],
    ]);
    const conversationFilter = (inConversation!.body!.searches as { filter: { must: unknown[] } }[])[1]!.filter;
    expect(conversationFilter.must).toEqual([tenant, { key: "conversation_id", match: { value: "c1" } }]);
    const upsert = qdrant.requests.slice(start).find((r) => r.method === "put")!;
    expect(Object.keys((upsert.body!.points as { payload: object }[])[0]!.payload).sort()).toEqual(
      ["conversation_id", "created_at", "model", "request_id", "role", "text", "user_id"].sort(),
    );
    expect(qdrant.violations).toEqual([]);
  });

  test("When Qdrant is unreachable, then connected() is false and operations reject", async () => {
    const store = new QdrantMemoryStore({ url: "http://127.0.0.1:9", timeoutMs: 1000 }, "nowhere", 100);
    expect(await store.connected()).toBe(false);
    await expect(store.forUser(ALICE).search(search("x"))).rejects.toBeDefined();
  });

  test("The test server itself refuses requests off the OpenAPI document", async () => {
    const before = qdrant.violations.length;
    const response = await fetch(`${qdrant.url}/collections/x/points/query`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ limit: -3, with_payload: "yes please" }),
    });
    expect(response.status).toBe(400);
    expect(qdrant.violations.length).toBe(before + 1);
    qdrant.violations.splice(before);
  });
});
