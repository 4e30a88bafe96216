import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Database, migrate, openPostgres } from "../../src/db";
import { createUser } from "../../src/identity";
import { EmbeddedMemoryStore } from "../../src/memory/embedded-store";
import { WORD_VECTORS_ID, WordVectorEmbedder } from "../../src/memory/embedders/word-vectors";
import { memoryId } from "../../src/memory/outbox";
import { QdrantMemoryStore } from "../../src/memory/qdrant-store";
import { bm25Document, bm25Query } from "../../src/memory/sparse";
import type { MemoryStore, NewMemory } from "../../src/memory/store";
import { type FakeQdrant, startFakeQdrant } from "../fakes/qdrant-server";
import { createTestDatabase } from "../helpers/postgres";
import { runCli } from "../helpers/processes";

jest.setTimeout(300_000);

const OLD = "perpetual_memory_old-model";
const CURRENT = `perpetual_memory_${WORD_VECTORS_ID}`;
const GHOST = "00000000-0000-4000-8000-0000000000ff";
const embedder = new WordVectorEmbedder();

/** A memory as an earlier embedding model stored it: same text and metadata, a vector from another space. */
function oldMemory(text: string, requestId: string): NewMemory {
  const dense = new Float32Array(100);
  dense[requestId.length % 100] = 1;
  return {
    id: memoryId(requestId, 0),
    conversationId: "c1",
    role: "user",
    text,
    createdAt: "2026-05-01T10:00:00.000Z",
    model: "gpt-4o",
    requestId,
    dense,
    sparse: bm25Document(text),
  };
}

describe("npm run cli -- memory reindex", () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;
  let qdrant: FakeQdrant;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = openPostgres({ url: database.url, poolSize: 2 });
    await migrate(db);
    qdrant = await startFakeQdrant();
  });
  afterAll(async () => {
    await qdrant.close();
    await db.close();
    await database.drop();
  });

  const cases: [string, (dataDir: string) => { env: Record<string, string>; open: (c: string) => MemoryStore }][] = [
    ["embedded", (dataDir) => ({ env: {}, open: (c) => new EmbeddedMemoryStore(dataDir, c, 100) })],
    [
      "qdrant",
      () => ({ env: { QDRANT_URL: qdrant.url }, open: (c) => new QdrantMemoryStore({ url: qdrant.url }, c, 100) }),
    ],
  ];

  test.each(cases)(
    "When the embedding model changed (%s), then every live user's memories are re-embedded into the new collection",
    async (kind, setup) => {
      const dataDir = mkdtempSync(join(tmpdir(), "reindex-"));
      const { env, open } = setup(dataDir);
      const alice = await createUser(db, `alice-${kind}@example.com`, "free");
      const old = open(OLD);
      await old.ready();
      await old
        .forUser(alice.id)
        .upsert([
          oldMemory("I grow tomatoes on my balcony", `a1-${kind}`),
          oldMemory("My bike is a red Bianchi", `a2-${kind}`),
        ]);
      await old.forUser(GHOST).upsert([oldMemory("an erased user's secret", `g1-${kind}`)]);
      await old.close();

      const result = await runCli(["memory", "reindex"], { DATABASE_URL: database.url, DATA_DIR: dataDir, ...env });
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      expect(result.stdout).toContain(`Reindexed 2 memories of 1 user(s) into ${CURRENT}`);

      const current = open(CURRENT);
      await current.ready();
      const query = "what vegetables do I grow";
      const hits = await current.forUser(alice.id).search({
        dense: embedder.embedOne(query),
        sparse: bm25Query(query),
        limit: 5,
      });
      expect(hits[0]!.memory).toMatchObject({
        id: memoryId(`a1-${kind}`, 0),
        text: "I grow tomatoes on my balcony",
        createdAt: "2026-05-01T10:00:00.000Z",
      });
      expect((await current.forUser(GHOST).list({ limit: 10 })).data).toEqual([]);
      await current.close();

      // Run again: idempotent. Without an earlier collection to read from, it says so.
      expect(
        (await runCli(["memory", "reindex"], { DATABASE_URL: database.url, DATA_DIR: dataDir, ...env })).code,
      ).toBe(0);
      const wrong = await runCli(["memory", "reindex", "--from", "nope"], {
        DATABASE_URL: database.url,
        DATA_DIR: dataDir,
        ...env,
      });
      expect(wrong.code).toBe(2);
      expect(wrong.stderr).toContain("no memory collection nope");
      if (kind === "qdrant") {
        expect(qdrant.violations).toEqual([]);
        await qdrant.collections.delete(OLD);
        await qdrant.collections.delete(CURRENT);
      }
    },
  );
});
