import { createHash } from "node:crypto";
import { type Database, migrate, openPostgres } from "../../src/db";
import { startFakePolar } from "../fakes/polar-server";
import { type FakeSupabaseAuth, startFakeSupabaseAuth } from "../fakes/supabase-auth";
import { createTestDatabase } from "../helpers/postgres";
import { runCli } from "../helpers/processes";

jest.setTimeout(300_000);

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

  test("When billing meters setup runs twice, then Polar gets the two recommended meters once, filtered on the event name", async () => {
    const polar = await startFakePolar();
    try {
      const polarEnv = {
        ...env,
        POLAR_API_KEY: polar.token,
        POLAR_SERVER: polar.url,
        POLAR_EVENT_NAME: "perpetual.usage",
      };
      const first = await runCli(["billing", "meters", "setup"], polarEnv);
      expect(first.stderr).toBe("");
      expect(first.code).toBe(0);
      expect(first.stdout).toContain("Created  LLM tokens");
      const again = await runCli(["billing", "meters", "setup"], polarEnv);
      expect(again.code).toBe(0);
      expect(again.stdout).toContain("Exists   LLM cost (USD cents)");
      expect(polar.meters).toHaveLength(2);
      expect(polar.meters.map((m) => m.aggregation)).toEqual([
        { func: "sum", property: "_llm.total_tokens" },
        { func: "sum", property: "_cost.amount" },
      ]);
      expect(polar.meters[0]!.filter).toEqual({
        conjunction: "and",
        clauses: [{ property: "name", operator: "eq", value: "perpetual.usage" }],
      });
      expect(polar.violations).toEqual([]);
      const off = await runCli(["billing", "meters", "setup"], env);
      expect(off.code).toBe(2);
      expect(off.stderr).toContain("POLAR_API_KEY");
    } finally {
      await polar.close();
    }
  });

  test("When billing credit runs, then the user's prepaid balance moves by the amount", async () => {
    await runCli(["users", "create", "--email", "uma@example.com"], env);
    const credited = await runCli(["billing", "credit", "--user", "uma@example.com", "--usd", "25"], env);
    expect(credited.code).toBe(0);
    expect(credited.stdout).toContain("$25.00");
    expect(credited.stderr).toMatch(/"action":"billing.credit".*"actor":"cli"/);
    const debited = await runCli(["billing", "credit", "--user", "uma@example.com", "--usd=-5.5"], env);
    expect(debited.code).toBe(0);
    const [row] = await db.query<{ balance: number }>(
      "select current_balance_usd::float8 as balance from users where email = 'uma@example.com'",
    );
    expect(row!.balance).toBe(19.5);
    const bad = await runCli(["billing", "credit", "--user", "uma@example.com", "--usd", "lots"], env);
    expect(bad.code).toBe(2);
  });
});
