import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Database } from "./types";

export const MIGRATIONS_DIR = resolve(__dirname, "..", "..", "supabase", "migrations");

export interface Migration {
  version: string;
  name: string;
  sql: string;
}

/** Supabase CLI layout: `<14-digit timestamp>_<name>.sql`, applied in version order. */
export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((file) => /^\d{14}_[\w-]+\.sql$/.test(file))
    .sort()
    .map((file) => {
      const [version, ...rest] = file.replace(/\.sql$/, "").split("_");
      return { version: version as string, name: rest.join("_"), sql: readFileSync(join(dir, file), "utf8") };
    });
}

// The Supabase CLI's own history table: migrations applied here show as applied to `supabase migration list`
// and `supabase db push`, and the reverse.
const HISTORY_TABLE = "supabase_migrations.schema_migrations";
const ENSURE_HISTORY = `
  create schema if not exists supabase_migrations;
  create table if not exists ${HISTORY_TABLE} (version text primary key, statements text[], name text);`;
// Serialises concurrent migrators (several replicas starting at once, or a migration Job beside them).
const MIGRATION_LOCK = 4_732_019_203;

/** Applies what is pending, each migration in its own transaction with its history row. Returns versions applied. */
export async function migrate(db: Database, migrations = readMigrations()): Promise<string[]> {
  await db.transaction(async (tx) => {
    await tx.query("select pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
    await tx.exec(ENSURE_HISTORY);
  });
  const applied: string[] = [];
  for (const migration of migrations) {
    const ran = await db.transaction(async (tx) => {
      await tx.query("select pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
      const done = await tx.query(`select 1 from ${HISTORY_TABLE} where version = $1`, [migration.version]);
      if (done.length > 0) return false;
      await tx.exec(migration.sql);
      await tx.query(`insert into ${HISTORY_TABLE} (version, name, statements) values ($1, $2, $3)`, [
        migration.version,
        migration.name,
        [migration.sql],
      ]);
      return true;
    });
    if (ran) applied.push(migration.version);
  }
  return applied;
}

/** Versions not yet applied; an unreachable database throws. */
export async function pendingMigrations(db: Database, migrations = readMigrations()): Promise<string[]> {
  const exists = await db.query<{ present: boolean }>("select to_regclass($1) is not null as present", [HISTORY_TABLE]);
  if (!exists[0]?.present) return migrations.map((m) => m.version);
  const rows = await db.query<{ version: string }>(`select version from ${HISTORY_TABLE}`);
  const done = new Set(rows.map((r) => r.version));
  return migrations.filter((m) => !done.has(m.version)).map((m) => m.version);
}
