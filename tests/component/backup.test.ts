import { randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { libpqTarget, PERPETUAL_TABLES } from "../../src/backup";
import { type Database, migrate, openPostgres } from "../../src/db";
import { WORD_VECTORS_ID } from "../../src/memory/embedders/word-vectors";
import { vaultKeysFrom } from "../../src/vault";
import { type FakeOpenAiUpstream, startFakeOpenAiUpstream } from "../fakes/openai-upstream";
import { type FakeQdrant, startFakeQdrant } from "../fakes/qdrant-server";
import { startTestApp, testConfig } from "../helpers/app";
import { memoryCaller } from "../helpers/memory";
import { createTestDatabase } from "../helpers/postgres";
import { runCli } from "../helpers/processes";

jest.setTimeout(300_000);

const COLLECTION = `perpetual_memory_${WORD_VECTORS_ID}`;
const MASTER_KEY = randomBytes(32).toString("base64");

type TestDatabase = { url: string; drop: () => Promise<void>; db: Database };

async function freshDatabase(): Promise<TestDatabase> {
  const database = await createTestDatabase();
  return { ...database, db: openPostgres({ url: database.url, poolSize: 3 }) };
}

/** Every row of Perpetual's tables, in a stable order: equal contents compare equal. */
async function contents(db: Database): Promise<Record<string, unknown>> {
  const all: Record<string, unknown> = {};
  for (const table of PERPETUAL_TABLES) {
    const [row] = await db.query<{ rows: unknown }>(
      `select coalesce(jsonb_agg(to_jsonb(t) order by to_jsonb(t)::text), '[]') as rows from public.${table} t`,
    );
    all[table] = row!.rows;
  }
  return all;
}

const envFor = (database: { url: string }, qdrant: FakeQdrant, key = MASTER_KEY) => ({
  DATABASE_URL: database.url,
  QDRANT_URL: qdrant.url,
  API_KEY_ENCRYPTION_KEY: key,
});

describe("Backup and restore (CLI, pg_dump/pg_restore on PostgreSQL 15, Qdrant snapshots on the test server)", () => {
  let source: TestDatabase;
  let upstream: FakeOpenAiUpstream;
  let sourceQdrant: FakeQdrant;
  let alice: { userId: string; key: string };
  let bob: { userId: string; key: string };
  let backupDir: string;
  const extras: { close: () => Promise<void> }[] = [];

  beforeAll(async () => {
    source = await freshDatabase();
    await migrate(source.db);
    upstream = await startFakeOpenAiUpstream();
    sourceQdrant = await startFakeQdrant();
    const app = await startTestApp({
      db: source.db,
      config: testConfig({ OPENAI_BASE_URL: upstream.url, ...envFor(source, sourceQdrant) }),
      vaultKeys: vaultKeysFrom(envFor(source, sourceQdrant)),
    });
    const a = await memoryCaller(app, source.db, "alice@example.com");
    const b = await memoryCaller(app, source.db, "bob@example.com");
    alice = a;
    bob = b;
    await a.client("c1").chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "My sister Ottilie lives in Reykjavik and teaches geology." }],
    });
    await b.client("c1").chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "I keep bees on the roof of my flat in Lisbon." }],
    });
    await app.services.usage.flush();
    await app.services.memory.outbox.drain();
    // Qdrant away: this memory stays pending in memory_outbox, so only the PostgreSQL dump holds it.
    await sourceQdrant.stop();
    await a.client("c2").chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "My cat Pixel is afraid of the vacuum cleaner." }],
    });
    await app.services.usage.flush();
    await app.services.memory.outbox.drain().catch(() => 0);
    await app.close();
    await sourceQdrant.restart();
    // Someone else's collection in the same Qdrant is not Perpetual's to back up.
    await fetch(`${sourceQdrant.url}/collections/unrelated`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ vectors: { size: 4, distance: "Cosine" } }),
    });

    backupDir = join(mkdtempSync(join(tmpdir(), "perpetual-backups-")), "nightly");
    const created = await runCli(["backup", "create", "--out", backupDir], envFor(source, sourceQdrant));
    expect(created.stderr).toBe("");
    expect(created.code).toBe(0);
    expect(created.stdout).toContain(`Backup complete: ${backupDir}`);
  });

  afterAll(async () => {
    for (const extra of extras.reverse()) await extra.close();
    await sourceQdrant.close();
    await upstream.close();
    await source.db.close();
    await source.drop();
  });

  afterEach(() => expect(sourceQdrant.violations).toEqual([]));

  const track = <T extends { close: () => Promise<void> }>(thing: T) => {
    extras.push(thing);
    return thing;
  };
  const target = async () => {
    const database = await freshDatabase();
    track({
      close: async () => {
        await database.db.close();
        await database.drop();
      },
    });
    return database;
  };
  const restore = (dir: string, env: Record<string, string>, ...flags: string[]) =>
    runCli(["backup", "restore", dir, ...flags], env);

  test("When a backup is made, then it holds every table's rows, only Perpetual's collections, a manifest, and nothing readable by others", async () => {
    const manifest = JSON.parse(readFileSync(join(backupDir, "manifest.json"), "utf8"));
    expect(manifest.format).toBe("perpetual-backup/1");
    expect(manifest.postgres.rows).toMatchObject({ users: 2, api_keys: 2, user_provider_keys: 2, usage_logs: 3 });
    expect(manifest.postgres.rows.memory_outbox).toBe(1);
    expect(manifest.postgres.masterKeyIds).toHaveLength(1);
    expect(manifest.qdrant.map((q: { collection: string }) => q.collection)).toEqual([COLLECTION]);
    expect(manifest.qdrant[0].points).toBe(sourceQdrant.payloads(COLLECTION).length);
    // The memory written while Qdrant was away is in the dump's outbox, not in the snapshot.
    expect(sourceQdrant.payloads(COLLECTION).some((p) => String(p.text).includes("Pixel"))).toBe(false);
    expect(statSync(backupDir).mode & 0o777).toBe(0o700);
    for (const file of ["manifest.json", "postgres.dump", manifest.qdrant[0].file]) {
      expect(statSync(join(backupDir, file)).mode & 0o777).toBe(0o600);
    }
    // The server's copy of the snapshot is deleted once downloaded.
    const listed = (await (await fetch(`${sourceQdrant.url}/collections/${COLLECTION}/snapshots`)).json()) as {
      result: unknown[];
    };
    expect(listed.result).toEqual([]);
    expect(readFileSync(join(backupDir, "postgres.dump")).subarray(0, 5).toString()).toBe("PGDMP");
  });

  test("When restored into an empty database and Qdrant, then contents match, the old API key and provider key work, and the pending memory arrives", async () => {
    const restored = await target();
    const qdrant = track(await startFakeQdrant());
    const result = await restore(backupDir, envFor(restored, qdrant));
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/PostgreSQL: \d+ rows restored/);
    expect(await contents(restored.db)).toEqual(await contents(source.db));
    expect(qdrant.payloads(COLLECTION)).toEqual(sourceQdrant.payloads(COLLECTION));
    expect(qdrant.collections.has("unrelated")).toBe(false);

    // Row-level security still holds on the restored tables, as role authenticated.
    const seenByBob = await restored.db.asUser(bob.userId, (tx) =>
      tx.query<{ user_id: string }>("select user_id from usage_logs"),
    );
    expect(seenByBob.length).toBe(1);
    expect(seenByBob.every((r) => r.user_id === bob.userId)).toBe(true);

    const app = track(
      await startTestApp({
        db: restored.db,
        config: testConfig({ OPENAI_BASE_URL: upstream.url, ...envFor(restored, qdrant) }),
        vaultKeys: vaultKeysFrom(envFor(restored, qdrant)),
      }),
    );
    // The memory that was still pending at backup time is written to the new Qdrant by the restored outbox.
    await app.services.memory.outbox.drain();
    expect(qdrant.payloads(COLLECTION).some((p) => String(p.text).includes("Pixel"))).toBe(true);
    const firstKeySeen = upstream.received.find((r) => r.path.endsWith("/chat/completions"))!.authorization;
    const client = new (await import("openai")).default({
      apiKey: alice.key,
      baseURL: `${app.baseUrl}/v1`,
      maxRetries: 0,
    });
    await client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "Who is Ottilie?" }] });
    const last = upstream.received.filter((r) => r.path.endsWith("/chat/completions")).at(-1)!;
    expect(last.authorization).toBe(firstKeySeen);
    expect(JSON.stringify(last.body)).toContain("Reykjavik");
    // Identity sequences were restored too: a new usage row does not collide with a restored id.
    await app.services.usage.flush();
    const [count] = await restored.db.query<{ n: number }>("select count(*)::int as n from usage_logs");
    expect(count!.n).toBe(4);
    expect(qdrant.violations).toEqual([]);
  });

  test("When the target is not empty, then restore refuses without changing it, and --replace makes it equal to the backup", async () => {
    const restored = await target();
    const qdrant = track(await startFakeQdrant());
    expect((await restore(backupDir, envFor(restored, qdrant))).code).toBe(0);
    await restored.db.query("insert into users (email) values ('carol@example.com')");
    const before = await contents(restored.db);

    const refused = await restore(backupDir, envFor(restored, qdrant));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /the target is not empty: .*users \(3 rows\).*Qdrant perpetual_memory_\S+ \(\d+ points\)/,
    );
    expect(await contents(restored.db)).toEqual(before);

    const replaced = await restore(backupDir, envFor(restored, qdrant), "--replace");
    expect(replaced.stderr).toBe("");
    expect(replaced.code).toBe(0);
    expect(await contents(restored.db)).toEqual(await contents(source.db));
    expect(qdrant.payloads(COLLECTION)).toEqual(sourceQdrant.payloads(COLLECTION));
  });

  test("When the master key is not the backup's, or a file is damaged, then restore refuses before touching anything", async () => {
    const restored = await target();
    const qdrant = track(await startFakeQdrant());
    const otherKey = randomBytes(32).toString("base64");
    const wrongKey = await restore(backupDir, envFor(restored, qdrant, otherKey));
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr).toMatch(/sealed under master key\(s\) [0-9a-f]{12}, which are not configured/);
    expect(wrongKey.stderr).not.toContain(otherKey);
    // Old key listed as previous: accepted (then `vault rotate` moves the keys to the new one).
    const asPrevious = await restore(backupDir, {
      ...envFor(restored, qdrant, otherKey),
      API_KEY_ENCRYPTION_KEYS_PREVIOUS: MASTER_KEY,
    });
    expect(asPrevious.code).toBe(0);

    const damaged = join(mkdtempSync(join(tmpdir(), "perpetual-damaged-")), "copy");
    cpSync(backupDir, damaged, { recursive: true });
    const dump = readFileSync(join(damaged, "postgres.dump"));
    dump[dump.length - 10] = (dump[dump.length - 10]! + 1) % 256;
    writeFileSync(join(damaged, "postgres.dump"), dump);
    const empty = await target();
    const result = await restore(damaged, envFor(empty, qdrant), "--replace");
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("postgres.dump does not match its checksum");
    // Refused before the target was even migrated.
    const [tables] = await empty.db.query<{ n: number }>(
      "select count(*)::int as n from pg_tables where schemaname = 'public'",
    );
    expect(tables!.n).toBe(0);

    const notABackup = await restore(mkdtempSync(join(tmpdir(), "perpetual-empty-")), envFor(empty, qdrant));
    expect(notABackup.code).toBe(1);
    expect(notABackup.stderr).toContain("has no manifest.json");
  });

  test("When a backup would go into a used directory, or there is no DATABASE_URL, then it is refused with the reason", async () => {
    const reused = await runCli(["backup", "create", "--out", backupDir], envFor(source, sourceQdrant));
    expect(reused.code).toBe(1);
    expect(reused.stderr).toContain("is not empty");
    const embedded = await runCli(["backup", "create"], { DATA_DIR: mkdtempSync(join(tmpdir(), "perpetual-data-")) });
    expect(embedded.code).toBe(2);
    expect(embedded.stderr).toContain("copy DATA_DIR");
  });

  test("When migrations add a table, then it is in PERPETUAL_TABLES (nothing is left out of backups)", async () => {
    const tables = await source.db.query<{ tablename: string }>(
      "select tablename from pg_tables where schemaname = 'public' order by 1",
    );
    expect(tables.map((t) => t.tablename)).toEqual([...PERPETUAL_TABLES]);
  });

  test("When the URL has a password, then pg_dump gets it through PGPASSWORD, never on its command line", () => {
    const target = libpqTarget("postgres://perpetual:s%40cret@db.example.com:5432/app?sslmode=require");
    expect(target.dbname).toBe("postgres://perpetual@db.example.com:5432/app?sslmode=require");
    expect(target.env).toEqual({ PGPASSWORD: "s@cret" });
    expect(libpqTarget("postgres://localhost/app").env).toEqual({});
  });
});
