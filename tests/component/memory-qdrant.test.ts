import { randomBytes } from "node:crypto";
import { type Database, migrate, openPostgres } from "../../src/db";
import { WORD_VECTORS_ID } from "../../src/memory/embedders/word-vectors";
import { type FakeOpenAiUpstream, startFakeOpenAiUpstream } from "../fakes/openai-upstream";
import { type FakeQdrant, startFakeQdrant } from "../fakes/qdrant-server";
import { startTestApp, type TestApp, testConfig } from "../helpers/app";
import { jsonClient } from "../helpers/http";
import { memoryCaller, memoryMessageOf } from "../helpers/memory";
import { createTestDatabase } from "../helpers/postgres";

const COLLECTION = `perpetual_memory_${WORD_VECTORS_ID}`;

describe("Persistent memory on Qdrant (test server), PostgreSQL 15, the openai SDK as client", () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;
  let upstream: FakeOpenAiUpstream;
  let qdrant: FakeQdrant;
  let app: TestApp;

  const caller = (email: string) => memoryCaller(app, db, email);

  const settle = async () => {
    await app.services.usage.flush();
    await app.services.memory.outbox.drain();
  };
  const lastSent = () => upstream.received.filter((r) => r.path.endsWith("/chat/completions")).at(-1)!.body;
  const pointsOf = (userId: string) => qdrant.payloads(COLLECTION).filter((p) => p.user_id === userId);
  const outboxRows = async (userId: string) =>
    (await db.query<{ n: number }>("select count(*)::int as n from memory_outbox where user_id = $1", [userId]))[0]!.n;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = openPostgres({ url: database.url, poolSize: 4 });
    await migrate(db);
    upstream = await startFakeOpenAiUpstream();
    qdrant = await startFakeQdrant();
    app = await startTestApp({
      db,
      config: testConfig({ OPENAI_BASE_URL: upstream.url, QDRANT_URL: qdrant.url }),
    });
  });

  afterAll(async () => {
    await app.close();
    await upstream.close();
    await qdrant.close();
    await db.close();
    await database.drop();
  });

  afterEach(() => expect(qdrant.violations).toEqual([]));

  test("When conversation 1 states a fact, then conversation 2 recalls it from Qdrant; memory off does not; nobody else sees it", async () => {
    const alice = await caller(`alice-${randomBytes(4).toString("hex")}@example.com`);
    const bob = await caller(`bob-${randomBytes(4).toString("hex")}@example.com`);
    await alice.client("trip-1").chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "My sister Ottilie lives in Reykjavik and teaches geology." }],
    });
    await settle();
    expect(pointsOf(alice.userId).map((p) => [p.role, p.conversation_id])).toEqual([
      ["user", "trip-1"],
      ["assistant", "trip-1"],
    ]);
    expect(await outboxRows(alice.userId)).toBe(0);

    const { response } = await alice
      .client("trip-2")
      .chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "Where does my sister live?" }] })
      .withResponse();
    expect(response.headers.get("x-perpetual-memory")).toBe("ok");
    expect(memoryMessageOf(lastSent())?.content).toContain("Ottilie lives in Reykjavik");

    await alice.client("trip-3", "off").chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "Where does my sister live?" }],
    });
    expect(memoryMessageOf(lastSent())).toBeUndefined();

    await bob.client("b-1").chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "Where does my sister live? Reykjavik?" }],
    });
    expect(JSON.stringify(lastSent())).not.toContain("Ottilie");

    const health = (await (await fetch(`${app.baseUrl}/health`)).json()) as { vector_db_connected: boolean };
    expect(health.vector_db_connected).toBe(true);
  });

  test("When the memory API is used, then each caller lists, searches and deletes only their own memories", async () => {
    const carol = await caller(`carol-${randomBytes(4).toString("hex")}@example.com`);
    const dave = await caller(`dave-${randomBytes(4).toString("hex")}@example.com`);
    for (const [i, text] of [
      "I play the cello in an orchestra.",
      "My favourite food is ramen.",
      "I hike in Patagonia.",
    ].entries()) {
      await carol
        .client(`c-${i}`)
        .chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: text }] });
    }
    await dave.client("d-0").chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "I play the cello too." }],
    });
    await settle();
    const api = jsonClient(app.baseUrl);

    const first = await api.call("GET", "/v1/memories?limit=4", { token: carol.key });
    expect(first.status).toBe(200);
    expect(first.body.data).toHaveLength(4);
    expect(first.body.has_more).toBe(true);
    expect(first.body.data[0].conversation_id).toBe("c-2");
    const second = await api.call("GET", `/v1/memories?limit=4&after=${first.body.next_cursor}`, { token: carol.key });
    expect(second.body.data).toHaveLength(2);
    expect(second.body.has_more).toBe(false);
    expect(second.body.next_cursor).toBeNull();
    const all = [...first.body.data, ...second.body.data];
    expect(new Set(all.map((m: { id: string }) => m.id)).size).toBe(6);
    expect(all.every((m: { text: string }) => !m.text.includes("too"))).toBe(true);

    const oneConversation = await api.call("GET", "/v1/memories?conversation_id=c-0", { token: carol.key });
    expect(oneConversation.body.data.map((m: { role: string }) => m.role).sort()).toEqual(["assistant", "user"]);

    const found = await api.call("POST", "/v1/memories/search", {
      token: carol.key,
      body: { query: "cello", limit: 3 },
    });
    expect(found.status).toBe(200);
    expect(found.body.data[0].text).toContain("cello in an orchestra");
    expect(found.body.data[0].score).toBeGreaterThan(0);
    const davesSearch = await api.call("POST", "/v1/memories/search", { token: dave.key, body: { query: "cello" } });
    expect(davesSearch.body.data.every((m: { text: string }) => !m.text.includes("orchestra"))).toBe(true);

    // Dave cannot delete Carol's memory even with its id: it is not his, so it does not exist for him.
    const carolsMemory = found.body.data[0].id as string;
    const stolen = await api.call("DELETE", `/v1/memories/${carolsMemory}`, { token: dave.key });
    expect(stolen.status).toBe(404);
    expect(stolen.body.error.code).toBe("memory_not_found");
    expect(pointsOf(carol.userId)).toHaveLength(6);

    expect((await api.call("DELETE", `/v1/memories/${carolsMemory}`, { token: carol.key })).body).toEqual({
      id: carolsMemory,
      object: "memory",
      deleted: true,
    });
    expect(pointsOf(carol.userId)).toHaveLength(5);
    const byConversation = await api.call("DELETE", "/v1/memories?conversation_id=c-1", { token: carol.key });
    expect(byConversation.body).toEqual({ object: "memory.deleted", deleted: 2, pending_deleted: 0 });
    expect(pointsOf(carol.userId).map((p) => p.conversation_id)).not.toContain("c-1");
    expect(pointsOf(dave.userId)).toHaveLength(2);

    // Bad input: OpenAI-shaped 400s naming the parameter, with a request id.
    const badCursor = await api.call("GET", "/v1/memories?after=bogus", { token: carol.key });
    expect(badCursor.status).toBe(400);
    expect(badCursor.body.error.param).toBe("after");
    expect(badCursor.headers.get("x-request-id")).toBeTruthy();
    expect((await api.call("GET", "/v1/memories?limit=0", { token: carol.key })).body.error.param).toBe("limit");
    expect((await api.call("POST", "/v1/memories/search", { token: carol.key, body: {} })).body.error.param).toBe(
      "query",
    );
    expect((await api.call("DELETE", "/v1/memories", { token: carol.key })).status).toBe(400);
    expect((await api.call("GET", "/v1/memories")).status).toBe(401);

    const everything = await api.call("DELETE", "/v1/memories?all=true", { token: carol.key });
    expect(everything.body.deleted).toBe(3);
    expect(pointsOf(carol.userId)).toEqual([]);
  });

  test("When Qdrant is down during traffic, then completions succeed without memory, the outbox grows, and drains once it is back, nothing stored twice", async () => {
    const erin = await caller(`erin-${randomBytes(4).toString("hex")}@example.com`);
    const api = jsonClient(app.baseUrl);
    await qdrant.stop();
    try {
      for (let i = 0; i < 5; i++) {
        const { data, response } = await erin
          .client("outage")
          .chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: `Fact number ${i}: owls` }] })
          .withResponse();
        expect(data.choices[0]!.message.content).toContain(`Fact number ${i}`);
        expect(response.headers.get("x-perpetual-memory")).toBe("unavailable");
      }
      await settle();
      await app.services.memory.outbox.drain();
      expect(await outboxRows(erin.userId)).toBe(5);
      const health = (await (await fetch(`${app.baseUrl}/health`)).json()) as { vector_db_connected: boolean };
      expect(health.vector_db_connected).toBe(false);
      const listing = await api.call("GET", "/v1/memories", { token: erin.key });
      expect(listing.status).toBe(503);
      expect(listing.body.error.code).toBe("memory_unavailable");
      const metrics = await (await fetch(`${app.baseUrl}/metrics`)).text();
      expect(metrics).toMatch(/perpetual_memory_recall_failures_total\{reason="unavailable"\} [1-9]/);
    } finally {
      await qdrant.restart();
    }
    // Backoff: rows are due again within a few seconds; make them due now rather than wait.
    await db.query("update memory_outbox set next_attempt_at = now() where user_id = $1", [erin.userId]);
    await app.services.memory.outbox.drain();
    await app.services.memory.outbox.drain(); // a second drain (a retry) must not add anything
    expect(await outboxRows(erin.userId)).toBe(0);
    const points = pointsOf(erin.userId);
    expect(points).toHaveLength(10);
    const perRequest = new Map<unknown, number>();
    for (const p of points) perRequest.set(p.request_id, (perRequest.get(p.request_id) ?? 0) + 1);
    expect([...perRequest.values()]).toEqual([2, 2, 2, 2, 2]);
  });

  test("When a user erases their account, then nothing of them remains in any table or in the collection", async () => {
    const frank = await caller(`frank-${randomBytes(4).toString("hex")}@example.com`);
    await frank.client("f-1").chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "My passport number is X1234567." }],
    });
    await settle();
    // One more exchange still waiting in the outbox when the account goes: the background drain (every 500 ms) is
    // paused, or a slow machine lets it store the exchange first and the erasure counts 4.
    await app.services.memory.outbox.stop();
    await frank.client("f-2").chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "Remember my locker code 4412." }],
    });
    await app.services.usage.flush();
    expect(pointsOf(frank.userId).length).toBeGreaterThan(0);

    const erased = await jsonClient(app.baseUrl).call("DELETE", "/v1/me", { token: frank.key });
    expect(erased.status).toBe(200);
    expect(erased.body.deleted_rows.memories).toBe(2);
    await app.services.memory.outbox.drain();
    app.services.memory.outbox.start();

    expect(pointsOf(frank.userId)).toEqual([]);
    expect(JSON.stringify(qdrant.payloads(COLLECTION))).not.toContain("X1234567");
    const tables = await db.query<{ table_name: string; column_name: string }>(
      `select table_name, column_name from information_schema.columns
        where table_schema = 'public' and column_name in ('user_id', 'id') and table_name <> 'schema_migrations'`,
    );
    for (const { table_name, column_name } of tables) {
      const rows = await db.query(`select 1 from public.${table_name} where ${column_name}::text = $1`, [frank.userId]);
      expect([table_name, rows.length]).toEqual([table_name, 0]);
    }
  });
});
