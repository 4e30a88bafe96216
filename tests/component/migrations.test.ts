import { migrate, openPostgres, pendingMigrations, readMigrations } from "../../src/db";
import { ADAPTERS, type OpenedDatabase } from "../helpers/databases";
import { createTestDatabase } from "../helpers/postgres";

const ALL_VERSIONS = readMigrations().map((m) => m.version);
const TABLES = [
  "users",
  "api_keys",
  "usage_logs",
  "user_provider_keys",
  "memory_outbox",
  "billing_subscriptions",
  "billing_webhook_events",
  "billing_outbox",
  "usage_dead_letters",
  "responses",
];

describe.each(ADAPTERS)("Migrations on %s", (_name, open) => {
  let opened: OpenedDatabase;
  beforeEach(async () => {
    opened = await open();
  });
  afterEach(() => opened.cleanup());

  test("When migrations run twice in a row, then the first applies all and the second is a no-op", async () => {
    const { db } = opened;
    expect(await pendingMigrations(db)).toEqual(ALL_VERSIONS);
    expect(await migrate(db)).toEqual(ALL_VERSIONS);
    expect(await migrate(db)).toEqual([]);
    expect(await pendingMigrations(db)).toEqual([]);
    const history = await db.query<{ version: string; name: string }>(
      "select version, name from supabase_migrations.schema_migrations order by version",
    );
    expect(history.map((h) => h.version)).toEqual(ALL_VERSIONS);
    expect(history[0]?.name).toBe("auth_bootstrap");
  });

  test("When migrated, then every table exists with row-level security enabled and policies attached", async () => {
    const { db } = opened;
    await migrate(db);
    const rows = await db.query<{ relname: string; relrowsecurity: boolean; policies: number }>(
      `select c.relname, c.relrowsecurity,
              (select count(*) from pg_policy p where p.polrelid = c.oid) as policies
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind = 'r' order by c.relname`,
    );
    expect(rows.map((r) => r.relname).sort()).toEqual([...TABLES].sort());
    for (const row of rows) {
      expect(row.relrowsecurity).toBe(true);
      expect(Number(row.policies)).toBeGreaterThan(0);
    }
    const functions = await db.query<{ uid: string | null }>("select auth.uid() as uid");
    expect(functions[0]?.uid).toBeNull();
  });

  test("When Supabase's auth pieces already exist, then the bootstrap leaves them as they are", async () => {
    const { db } = opened;
    await db.exec(`
      create schema auth;
      create table auth.users (id uuid primary key, email text, instance_id uuid, raw_app_meta_data jsonb);
      create function auth.uid() returns uuid language sql stable as $$ select '00000000-0000-0000-0000-00000000000a'::uuid $$;`);
    await migrate(db);
    const uid = await db.query<{ uid: string }>("select auth.uid() as uid");
    expect(uid[0]?.uid).toBe("00000000-0000-0000-0000-00000000000a");
    const columns = await db.query<{ column_name: string }>(
      "select column_name from information_schema.columns where table_schema = 'auth' and table_name = 'users'",
    );
    expect(columns.map((c) => c.column_name)).toContain("raw_app_meta_data");
  });
});

describe("Concurrent migrators on PostgreSQL 15", () => {
  test("When two replicas migrate the same database at once, then each migration is applied exactly once", async () => {
    const database = await createTestDatabase();
    const first = openPostgres({ url: database.url, poolSize: 2 });
    const second = openPostgres({ url: database.url, poolSize: 2 });
    try {
      const [a, b] = await Promise.all([migrate(first), migrate(second)]);
      expect([...a, ...b].sort()).toEqual(ALL_VERSIONS);
      expect(await pendingMigrations(first)).toEqual([]);
    } finally {
      await first.close();
      await second.close();
      await database.drop();
    }
  });
});
