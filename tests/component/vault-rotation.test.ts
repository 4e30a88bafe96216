import { randomBytes } from "node:crypto";
import { type Database, migrate, openPostgres } from "../../src/db";
import { createVault, EncryptionError, rotateProviderKeys } from "../../src/vault";
import { parseMasterKey } from "../../src/vault/master-keys";
import { createTestDatabase } from "../helpers/postgres";
import { runCli } from "../helpers/processes";

// Each test runs the CLI as a process several times: slow on a busy machine, so a long budget.
jest.setTimeout(300_000);

const base64Key = () => randomBytes(32).toString("base64");

describe("Vault rotation on PostgreSQL 15", () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;

  beforeEach(async () => {
    database = await createTestDatabase();
    db = openPostgres({ url: database.url, poolSize: 3 });
    await migrate(db);
  });
  afterEach(async () => {
    await db.close();
    await database.drop();
  });

  async function seed(count: number, vault: ReturnType<typeof createVault>): Promise<Map<string, string>> {
    const plaintexts = new Map<string, string>();
    for (let i = 0; i < count; i++) {
      const [user] = await db.query<{ id: string }>("insert into users (email) values ($1) returning id", [
        `u${i}@example.com`,
      ]);
      const key = `sk-test-${i}-${randomBytes(8).toString("hex")}`;
      await db.query(
        "insert into user_provider_keys (user_id, provider, encrypted_key, key_last4) values ($1, 'openai', $2, $3)",
        [user!.id, vault.seal(user!.id, "openai", key), key.slice(-4)],
      );
      plaintexts.set(user!.id, key);
    }
    return plaintexts;
  }

  async function rows() {
    return db.query<{ user_id: string; encrypted_key: string }>(
      "select user_id, encrypted_key from user_provider_keys",
    );
  }

  test("When rotated, then every row opens under the new key alone and no longer under the old one", async () => {
    const oldKey = parseMasterKey(base64Key(), "old");
    const newKey = parseMasterKey(base64Key(), "new");
    const plaintexts = await seed(7, createVault(oldKey));
    const report = await rotateProviderKeys(db, createVault(newKey, [oldKey]), 3);
    expect(report).toEqual({ rotated: 7, failed: [] });
    const newOnly = createVault(newKey);
    const oldOnly = createVault(oldKey);
    for (const row of await rows()) {
      expect(newOnly.open(row.user_id, "openai", row.encrypted_key)).toBe(plaintexts.get(row.user_id));
      expect(() => oldOnly.open(row.user_id, "openai", row.encrypted_key)).toThrow(EncryptionError);
    }
    expect(await rotateProviderKeys(db, createVault(newKey, [oldKey]))).toEqual({ rotated: 0, failed: [] });
  });

  test("When a row cannot be opened with any configured key, then it is reported, left alone, and the rest rotate", async () => {
    const oldKey = parseMasterKey(base64Key(), "old");
    const lostKey = parseMasterKey(base64Key(), "lost");
    const newKey = parseMasterKey(base64Key(), "new");
    await seed(3, createVault(oldKey));
    const [orphanUser] = await db.query<{ id: string }>(
      "insert into users (email) values ('orphan@example.com') returning id",
    );
    const orphan = createVault(lostKey).seal(orphanUser!.id, "openai", "sk-orphaned-key");
    const [orphanRow] = await db.query<{ id: string }>(
      "insert into user_provider_keys (user_id, provider, encrypted_key, key_last4) values ($1, 'openai', $2, 'ey') returning id",
      [orphanUser!.id, orphan],
    );
    const report = await rotateProviderKeys(db, createVault(newKey, [oldKey]), 2);
    expect(report).toEqual({ rotated: 3, failed: [orphanRow!.id] });
    const [still] = await db.query<{ encrypted_key: string }>(
      "select encrypted_key from user_provider_keys where id = $1",
      [orphanRow!.id],
    );
    expect(still!.encrypted_key).toBe(orphan);
  });

  test("When the CLI runs vault rotate, then it reports the count and exits 0, and 1 when a row cannot be opened", async () => {
    const oldText = base64Key();
    const newText = base64Key();
    await seed(2, createVault(parseMasterKey(oldText, "old")));
    const env = {
      DATABASE_URL: database.url,
      API_KEY_ENCRYPTION_KEY: newText,
      API_KEY_ENCRYPTION_KEYS_PREVIOUS: oldText,
    };
    const ok = await runCli(["vault", "rotate"], env);
    expect(ok.stdout).toMatch(/Re-encrypted 2 provider key\(s\) under master key [0-9a-f]{12}\./);
    expect(ok.code).toBe(0);
    const withoutOld = await runCli(["vault", "rotate"], {
      DATABASE_URL: database.url,
      API_KEY_ENCRYPTION_KEY: base64Key(),
    });
    expect(withoutOld.code).toBe(1);
    expect(withoutOld.stderr).toMatch(/2 provider key\(s\) could not be decrypted/);
    expect(withoutOld.stdout + withoutOld.stderr).not.toContain(newText);
  });

  test("When vault status runs during a rotation, then it exits 0 only once every key is under the current one", async () => {
    const oldText = base64Key();
    const newText = base64Key();
    const oldId = parseMasterKey(oldText, "old").id;
    const newId = parseMasterKey(newText, "new").id;
    await seed(3, createVault(parseMasterKey(oldText, "old")));
    const env = {
      DATABASE_URL: database.url,
      API_KEY_ENCRYPTION_KEY: newText,
      API_KEY_ENCRYPTION_KEYS_PREVIOUS: oldText,
    };

    const before = await runCli(["vault", "status"], env);
    expect(before.code).toBe(1);
    expect(before.stdout).toContain(`${oldId}  3 provider key(s)  previous key: run "vault rotate"`);
    const unknown = await runCli(["vault", "status"], { DATABASE_URL: database.url, API_KEY_ENCRYPTION_KEY: newText });
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toContain(`${oldId}  3 provider key(s)  no configured key opens these`);

    expect((await runCli(["vault", "rotate"], env)).code).toBe(0);
    const after = await runCli(["vault", "status"], env);
    expect(after.code).toBe(0);
    expect(after.stdout).toContain(`${newId}  3 provider key(s)  current`);
    expect(after.stdout).toContain(`sealed under the current master key ${newId}`);
    expect(after.stdout + after.stderr).not.toContain(oldText);
  });
});
