import { type Database, migrate, type SqlExecutor } from "../../src/db";
import { ADAPTERS, type OpenedDatabase } from "../helpers/databases";

interface Tenant {
  userId: string;
  apiKeyId: string;
}

/** Seeds one user with a row in every table, through the server's own (owner) connection. */
async function seedTenant(db: Database, email: string): Promise<Tenant> {
  const [user] = await db.query<{ id: string }>("insert into users (email) values ($1) returning id", [email]);
  const userId = user!.id;
  const [key] = await db.query<{ id: string }>(
    "insert into api_keys (user_id, key_hash, key_prefix, key_last4) values ($1, $2, 'sk-perp-', 'abcd') returning id",
    [userId, `hash-${email}`],
  );
  await db.query(
    "insert into usage_logs (user_id, api_key_id, request_id, endpoint, model, total_tokens) values ($1, $2, $3, 'chat', 'gpt-4o', 10)",
    [userId, key!.id, `req-${email}`],
  );
  await db.query(
    "insert into user_provider_keys (user_id, provider, encrypted_key, key_last4) values ($1, 'openai', 'k1:ciphertext', 'wxyz')",
    [userId],
  );
  await db.query("insert into responses (id, user_id, conversation, response) values ($1, $2, '[]', '{}')", [
    `resp_${email}`,
    userId,
  ]);
  return { userId, apiKeyId: key!.id };
}

const OWNED_TABLES: Array<[table: string, ownerColumn: string]> = [
  ["users", "id"],
  ["api_keys", "user_id"],
  ["usage_logs", "user_id"],
  ["user_provider_keys", "user_id"],
  ["responses", "user_id"],
];

async function countOwnedBy(db: SqlExecutor, table: string, column: string, userId: string): Promise<number> {
  const rows = await db.query<{ n: number }>(`select count(*)::int as n from ${table} where ${column} = $1`, [userId]);
  return rows[0]!.n;
}

describe.each(ADAPTERS)("Row-level security on %s", (_name, open) => {
  let opened: OpenedDatabase;
  let db: Database;
  let a: Tenant;
  let b: Tenant;

  beforeEach(async () => {
    opened = await open(1); // one pooled connection: any state leaking out of asUser would be seen next
    db = opened.db;
    await migrate(db);
    a = await seedTenant(db, "a@example.com");
    b = await seedTenant(db, "b@example.com");
  });
  afterEach(() => opened.cleanup());

  test.each(OWNED_TABLES)("When user A selects from %s, then only A's rows are visible", async (table, column) => {
    const rows = await db.asUser(a.userId, (tx) => tx.query<Record<string, string>>(`select ${column} from ${table}`));
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((row) => row[column] === a.userId)).toBe(true);
    expect(await db.asUser(a.userId, (tx) => countOwnedBy(tx, table, column, b.userId))).toBe(0);
  });

  test.each(OWNED_TABLES)(
    "When user A updates or deletes B's rows in %s, then nothing of B's changes",
    async (table, column) => {
      const updateColumn = {
        users: "email",
        api_keys: "name",
        usage_logs: "model",
        user_provider_keys: "encrypted_key",
        responses: "previous_response_id",
      }[table];
      await db
        .asUser(a.userId, (tx) =>
          tx.query(`update ${table} set ${updateColumn} = 'x' where ${column} = $1 returning 1`, [b.userId]),
        )
        .then(
          (rows) => expect(rows).toHaveLength(0), // invisible rows: nothing to update
          (error: Error) => expect(error.message).toMatch(/permission denied/), // or no privilege at all
        );
      const deleted = await db.asUser(a.userId, (tx) =>
        tx.query(`delete from ${table} where ${column} = $1 returning 1`, [b.userId]),
      );
      expect(deleted).toHaveLength(0);
      expect(await countOwnedBy(db, table, column, b.userId)).toBeGreaterThan(0);
      const untouched = await db.query<Record<string, string>>(
        `select ${updateColumn} as v from ${table} where ${column} = $1`,
        [b.userId],
      );
      expect(untouched.every((row) => row.v !== "x")).toBe(true);
    },
  );

  test("When user A inserts rows owned by B, then every insert is refused", async () => {
    const attempts = [
      ["insert into users (id, email) values ($1, 'evil@example.com')", [b.userId]],
      [
        "insert into api_keys (user_id, key_hash, key_prefix, key_last4) values ($1, 'h-evil', 'sk', 'evil')",
        [b.userId],
      ],
      ["insert into usage_logs (user_id, request_id, endpoint, model) values ($1, 'r-evil', 'chat', 'm')", [b.userId]],
      [
        "insert into user_provider_keys (user_id, provider, encrypted_key, key_last4) values ($1, 'groq', 'c', 'evil')",
        [b.userId],
      ],
      ["insert into responses (id, user_id, conversation, response) values ('resp_evil', $1, '[]', '{}')", [b.userId]],
    ] as const;
    for (const [sql, params] of attempts) {
      await expect(db.asUser(a.userId, (tx) => tx.query(sql, [...params]))).rejects.toThrow(
        /row-level security|permission denied/,
      );
    }
    expect(await countOwnedBy(db, "user_provider_keys", "user_id", b.userId)).toBe(1);
    expect(await countOwnedBy(db, "api_keys", "user_id", b.userId)).toBe(1);
  });

  test("When user A tries to raise their own tier or key limits, then the privilege is missing", async () => {
    await expect(
      db.asUser(a.userId, (tx) => tx.query("update users set tier = 'enterprise' where id = $1", [a.userId])),
    ).rejects.toThrow(/permission denied/);
    await expect(
      db.asUser(a.userId, (tx) =>
        tx.query("update api_keys set rate_limit_per_minute = 100000 where user_id = $1", [a.userId]),
      ),
    ).rejects.toThrow(/permission denied/);
    await expect(
      db.asUser(a.userId, (tx) =>
        tx.query(
          "insert into api_keys (user_id, key_hash, key_prefix, key_last4, tier) values ($1, 'h2', 'sk', 'x', 'enterprise')",
          [a.userId],
        ),
      ),
    ).rejects.toThrow(/permission denied/);
    const [user] = await db.query<{ tier: string }>("select tier from users where id = $1", [a.userId]);
    expect(user!.tier).toBe("free");
  });

  test("When user A changes their settings, then only the settings columns of their own row can change", async () => {
    await db.asUser(a.userId, (tx) =>
      tx.query("update users set response_cache = 'exact', memory_mode = 'off' where id = $1", [a.userId]),
    );
    const bRows = await db.asUser(a.userId, (tx) =>
      tx.query("update users set response_cache = 'exact', memory_mode = 'off' where id = $1 returning 1", [b.userId]),
    );
    expect(bRows).toHaveLength(0);
    await expect(
      db.asUser(a.userId, (tx) => tx.query("update users set tier = 'enterprise' where id = $1", [a.userId])),
    ).rejects.toThrow(/permission denied/);
    const rows = await db.query<{
      id: string;
      response_cache: string | null;
      memory_mode: string | null;
      tier: string;
    }>("select id, response_cache, memory_mode, tier from users where id = any($1::uuid[])", [[a.userId, b.userId]]);
    expect(rows.find((r) => r.id === a.userId)).toMatchObject({ response_cache: "exact", memory_mode: "off" });
    expect(rows.find((r) => r.id === b.userId)).toMatchObject({ response_cache: null, memory_mode: null });
    expect(rows.every((r) => r.tier !== "enterprise")).toBe(true);
  });

  test("When user A manages their own provider key, then it works within RLS", async () => {
    const updated = await db.asUser(a.userId, (tx) =>
      tx.query("update user_provider_keys set encrypted_key = 'k1:new' where provider = 'openai' returning user_id"),
    );
    expect(updated).toEqual([{ user_id: a.userId }]);
    const [bRow] = await db.query<{ encrypted_key: string }>(
      "select encrypted_key from user_provider_keys where user_id = $1",
      [b.userId],
    );
    expect(bRow!.encrypted_key).toBe("k1:ciphertext");
  });

  test("When role authenticated has no claims, then every table looks empty", async () => {
    for (const [table] of OWNED_TABLES) {
      const rows = await db.transaction(async (tx) => {
        await tx.query("select set_config('role', 'authenticated', true)");
        return tx.query(`select * from ${table}`);
      });
      expect(rows).toHaveLength(0);
    }
  });

  test("When role anon queries, then it is refused", async () => {
    await expect(
      db.transaction(async (tx) => {
        await tx.query("select set_config('role', 'anon', true)");
        return tx.query("select * from user_provider_keys");
      }),
    ).rejects.toThrow(/permission denied/);
  });

  test("When asUser finishes or fails, then no role or claims leak to the next use of the connection", async () => {
    const sessionState = () =>
      db.query<{ role: string; claims: string | null }>(
        "select current_user as role, nullif(current_setting('request.jwt.claims', true), '') as claims",
      );
    const before = await sessionState();
    await db.asUser(a.userId, (tx) => tx.query("select 1"));
    expect(await sessionState()).toEqual(before);
    await expect(
      db.asUser(a.userId, async (tx) => {
        await tx.query("select 1");
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(await sessionState()).toEqual(before);
    expect(before[0]!.role).not.toBe("authenticated");
    expect(before[0]!.claims).toBeNull();
    const visible = await db.query<{ n: number }>("select count(*)::int as n from user_provider_keys");
    expect(visible[0]!.n).toBe(2);
  });

  test("When the user id is not a UUID, then asUser refuses before touching the database", async () => {
    await expect(db.asUser("' or 1=1 --", (tx) => tx.query("select 1"))).rejects.toThrow(/UUID/);
  });
});
