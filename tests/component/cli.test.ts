import { createHash } from "node:crypto";
import { type Database, migrate, openPostgres } from "../../src/db";
import { type FakeSupabaseAuth, startFakeSupabaseAuth } from "../fakes/supabase-auth";
import { createTestDatabase } from "../helpers/postgres";
import { runCli } from "../helpers/processes";

jest.setTimeout(60_000);

describe("CLI users and keys on PostgreSQL 15", () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;
  let supabase: FakeSupabaseAuth;
  let env: Record<string, string>;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = openPostgres({ url: database.url, poolSize: 2 });
    await migrate(db);
    supabase = await startFakeSupabaseAuth();
    env = { DATABASE_URL: database.url };
  });
  afterAll(async () => {
    await supabase.close();
    await db.close();
    await database.drop();
  });

  test("When users create runs, then it prints the new key once and stores only its hash", async () => {
    const result = await runCli(["users", "create", "--email", "pat@example.com", "--tier", "pro"], env);
    expect(result.code).toBe(0);
    const key = /API key \(shown only once, store it now\): (sk-perp-\w{40})/.exec(result.stdout)?.[1];
    expect(key).toBeDefined();
    const [row] = await db.query<{ key_hash: string; tier: string }>(
      "select k.key_hash, u.tier from api_keys k join users u on u.id = k.user_id where u.email = 'pat@example.com'",
    );
    expect(row).toEqual({ key_hash: createHash("sha256").update(key!).digest("hex"), tier: "pro" });

    const listed = await runCli(["keys", "list", "--user", "pat@example.com"], env);
    expect(listed.stdout).toContain(`${key!.slice(0, 12)}…${key!.slice(-4)}`);
    expect(listed.stdout).not.toContain(key);
    const users = await runCli(["users", "list"], env);
    expect(users.stdout).toMatch(/pat@example\.com {2}tier=pro/);
  });

  test("When keys create and keys revoke run, then a second key is issued and then deactivated", async () => {
    await runCli(["users", "create", "--email", "quinn@example.com"], env);
    const created = await runCli(
      ["keys", "create", "--user", "quinn@example.com", "--name", "batch", "--rate-limit-per-minute", "7"],
      env,
    );
    expect(created.code).toBe(0);
    const keyId = /Created API key ([0-9a-f-]{36})/.exec(created.stdout)?.[1];
    const [row] = await db.query<{ rate_limit_per_minute: number; name: string }>(
      "select rate_limit_per_minute, name from api_keys where id = $1",
      [keyId],
    );
    expect(row).toEqual({ rate_limit_per_minute: 7, name: "batch" });
    const revoked = await runCli(["keys", "revoke", keyId!], env);
    expect(revoked.code).toBe(0);
    const [after] = await db.query<{ is_active: boolean }>("select is_active from api_keys where id = $1", [keyId]);
    expect(after!.is_active).toBe(false);
  });

  test("When the input is wrong, then the CLI says what and exits 2", async () => {
    const missing = await runCli(["users", "create"], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("--email is required");
    const badTier = await runCli(["users", "create", "--email", "r@example.com", "--tier", "gold"], env);
    expect(badTier.code).toBe(2);
    expect(badTier.stderr).toContain('unknown tier "gold"');
    const duplicate = await runCli(["users", "create", "--email", "pat@example.com"], env);
    expect(duplicate.code).toBe(2);
    expect(duplicate.stderr).toContain("already exists");
    const unknownKey = await runCli(["keys", "revoke", "00000000-0000-0000-0000-000000000000"], env);
    expect(unknownKey.code).toBe(2);
  });

  test("When users invite runs with a service-role key, then Supabase Auth's admin API invites and the user row exists", async () => {
    const result = await runCli(["users", "invite", "--email", "sam@example.com"], {
      ...env,
      SUPABASE_URL: supabase.url,
      SUPABASE_SERVICE_ROLE_KEY: supabase.serviceRoleKey,
    });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(supabase.invited).toEqual(["sam@example.com"]);
    const [row] = await db.query<{ tier: string }>("select tier from users where email = 'sam@example.com'");
    expect(row!.tier).toBe("free");
    const noKey = await runCli(["users", "invite", "--email", "t@example.com"], { ...env, SUPABASE_URL: supabase.url });
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain("SUPABASE_SERVICE_ROLE_KEY");
  });
});
