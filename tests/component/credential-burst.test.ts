import { randomBytes } from "node:crypto";
import { type Database, migrate, openPostgres, type SqlExecutor } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { type FakeOpenAiUpstream, startFakeOpenAiUpstream } from "../fakes/openai-upstream";
import { startTestApp, type TestApp, testConfig } from "../helpers/app";
import { createTestDatabase } from "../helpers/postgres";

jest.setTimeout(120_000);

/** The database as the app sees it, counting the credential lookups it makes. */
function countingLookups(db: Database) {
  const counts = { apiKey: 0, providerKey: 0 };
  const note = (sql: string) => {
    if (sql.includes("from api_keys k join users u")) counts.apiKey++;
    if (sql.includes("select encrypted_key from user_provider_keys")) counts.providerKey++;
  };
  const counting = (tx: SqlExecutor): SqlExecutor => ({
    query: (sql, params) => {
      note(sql);
      return tx.query(sql, params);
    },
    exec: (sql) => tx.exec(sql),
  });
  const wrapped: Database = {
    ...db,
    query: (sql, params) => {
      note(sql);
      return db.query(sql, params);
    },
    asUser: (userId, fn) => db.asUser(userId, (tx) => fn(counting(tx))),
    transaction: (fn) => db.transaction((tx) => fn(counting(tx))),
  };
  return { db: wrapped, counts };
}

describe("A burst of requests on cold credential caches, pool of 2 connections", () => {
  let database: { url: string; drop: () => Promise<void> };
  let direct: Database;
  let upstream: FakeOpenAiUpstream;
  let app: TestApp;
  let counts: { apiKey: number; providerKey: number };

  beforeAll(async () => {
    database = await createTestDatabase();
    direct = openPostgres({ url: database.url, poolSize: 2 });
    await migrate(direct);
    upstream = await startFakeOpenAiUpstream({ record: false });
    const counted = countingLookups(direct);
    counts = counted.counts;
    app = await startTestApp({
      db: counted.db,
      config: testConfig({
        DATABASE_URL: database.url,
        DATABASE_POOL_SIZE: "2",
        OPENAI_BASE_URL: upstream.url,
        MEMORY_DEFAULT_MODE: "off",
        // Long enough that no entry ages out during the burst, however slow a busy machine makes it: what is
        // counted is the single flight of the first lookups, not a later refresh.
        AUTH_CACHE_TTL_SECONDS: "300",
      }),
    });
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
    await direct.close();
    await database.drop();
  });

  test("When 500 requests of 5 users arrive at once, then all succeed with one lookup per key", async () => {
    const keys = await Promise.all(
      Array.from({ length: 5 }, async (_, i) => {
        const user = await createUser(direct, `burst-${i}-${randomBytes(3).toString("hex")}@example.com`, "enterprise");
        await app.services.providerKeys.add(user.id, "openai", `sk-proj-${randomBytes(16).toString("hex")}`);
        return (await createApiKey(direct, user.id)).key;
      }),
    );
    counts.apiKey = 0;
    counts.providerKey = 0;
    const statuses = await Promise.all(
      Array.from({ length: 500 }, (_, i) =>
        fetch(`${app.baseUrl}/v1/chat/completions`, {
          method: "POST",
          headers: { authorization: `Bearer ${keys[i % 5]}`, "content-type": "application/json" },
          body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: `burst ${i}` }] }),
        }).then(async (res) => {
          await res.arrayBuffer();
          return res.status;
        }),
      ),
    );
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(counts.apiKey).toBeLessThanOrEqual(5);
    expect(counts.providerKey).toBeLessThanOrEqual(5);
  });
});
