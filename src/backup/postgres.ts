import { type ChildProcess, execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import type { Database, SqlExecutor } from "../db";
import { redactText } from "../log";
import { countByMasterKey } from "../vault";

/**
 * Perpetual's tables, in the public schema of a database that may hold others (a Supabase project often does).
 * A test compares this list with what the migrations create, so a new table cannot be left out of backups.
 */
export const PERPETUAL_TABLES = [
  "api_keys",
  "billing_outbox",
  "billing_subscriptions",
  "billing_webhook_events",
  "memory_outbox",
  "responses",
  "usage_dead_letters",
  "usage_logs",
  "user_provider_keys",
  "users",
] as const;

const run = promisify(execFile);

/**
 * libpq arguments for a connection URL with the password moved to PGPASSWORD: a command line is visible to every
 * user of the machine (ps, /proc), the environment of a process only to its owner.
 */
export function libpqTarget(url: string): { dbname: string; env: Record<string, string> } {
  const parsed = new URL(url);
  const password = decodeURIComponent(parsed.password);
  parsed.password = "";
  return { dbname: parsed.toString(), env: password ? { PGPASSWORD: password } : {} };
}

const quoted = (table: string) => `public."${table.replaceAll('"', '""')}"`;

export async function countRows(db: SqlExecutor, tables: readonly string[]): Promise<Record<string, number>> {
  const rows: Record<string, number> = {};
  for (const table of tables) {
    const [row] = await db.query<{ count: number }>(`select count(*)::int as count from ${quoted(table)}`);
    rows[table] = row?.count ?? 0;
  }
  return rows;
}

export async function appliedMigrations(db: SqlExecutor): Promise<string[]> {
  const rows = await db.query<{ version: string }>(
    "select version from supabase_migrations.schema_migrations order by version",
  );
  return rows.map((r) => r.version);
}

/** A client tool older than the server cannot read its catalog (pg_dump 15 refuses a PostgreSQL 17 server). */
export async function assertClientTools(db: Database, tools: string[]): Promise<void> {
  const [row] = await db.query<{ server_version_num: string }>("show server_version_num");
  const serverMajor = Math.floor(Number(row?.server_version_num ?? 0) / 10_000);
  for (const tool of tools) {
    let output: string;
    try {
      output = (await run(tool, ["--version"])).stdout;
    } catch {
      throw new Error(
        `${tool} not found: install the PostgreSQL ${serverMajor} client tools (postgresql-client-${serverMajor})`,
      );
    }
    const major = Number(/(\d+)(?:\.\d+)?/.exec(output)?.[1] ?? 0);
    if (major < serverMajor) {
      throw new Error(
        `${tool} ${major} cannot work with PostgreSQL ${serverMajor}: install postgresql-client-${serverMajor} or newer`,
      );
    }
  }
}

/** Runs a client tool, failing with its (redacted) stderr. */
async function runTool(tool: string, args: string[], env: Record<string, string>): Promise<void> {
  try {
    await run(tool, args, { env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(`${tool} failed: ${redactText(stderr || (error as Error).message)}`);
  }
}

export interface DumpedState {
  serverVersion: string;
  migrations: string[];
  rows: Record<string, number>;
  masterKeyIds: string[];
}

/**
 * Dumps the data of Perpetual's tables (custom format) from one exported snapshot and reads the row counts, the
 * migration history and the vault key ids in that same snapshot, so the manifest describes exactly what the
 * dump holds even while the server keeps writing.
 */
export async function dumpData(db: Database, url: string, file: string): Promise<DumpedState> {
  return db.transaction(async (tx) => {
    await tx.query("set transaction isolation level repeatable read, read only");
    const [snapshot] = await tx.query<{ id: string }>("select pg_export_snapshot() as id");
    const [version] = await tx.query<{ server_version: string }>("show server_version");
    const state: DumpedState = {
      serverVersion: version?.server_version ?? "unknown",
      migrations: await appliedMigrations(tx),
      rows: await countRows(tx, PERPETUAL_TABLES),
      masterKeyIds: (await countByMasterKey(tx)).map((k) => k.keyId),
    };
    const target = libpqTarget(url);
    await runTool(
      "pg_dump",
      [
        "--format=custom",
        "--data-only",
        "--no-owner",
        "--no-privileges",
        `--snapshot=${snapshot?.id}`,
        ...PERPETUAL_TABLES.map((t) => `--table=${quoted(t)}`),
        `--file=${file}`,
        `--dbname=${target.dbname}`,
      ],
      target.env,
    );
    return state;
  });
}

/**
 * Loads a dump made by dumpData in one transaction: `pg_restore` turns it into SQL, `psql --single-transaction`
 * applies it, after emptying the tables when `replace` is set. Either everything is restored or nothing changed.
 */
export async function loadData(url: string, file: string, { replace }: { replace: boolean }): Promise<void> {
  const target = libpqTarget(url);
  const env = { ...process.env, ...target.env };
  const truncate = replace ? ["--command", `truncate table ${PERPETUAL_TABLES.map(quoted).join(", ")} cascade`] : [];
  const restore = spawn("pg_restore", ["--data-only", "--no-owner", "--file=-", file], { env });
  const psql = spawn(
    "psql",
    ["--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--single-transaction", ...truncate, "--file=-", target.dbname],
    { env, stdio: ["pipe", "ignore", "pipe"] },
  );
  restore.stdout.pipe(psql.stdin);
  // When psql stops at an error, pg_restore's remaining output hits a closed pipe (EPIPE). Without a listener that
  // error would crash the CLI; psql's exit status already reports the failure.
  psql.stdin.on("error", () => undefined);
  const finished = (child: ChildProcess, name: string) =>
    new Promise<void>((resolve, reject) => {
      let stderr = "";
      child.stderr?.on("data", (chunk: Buffer) => {
        stderr += chunk.toString("utf8");
      });
      child.on("error", (error) => reject(new Error(`${name}: ${error.message}`)));
      child.on("close", (code) =>
        code === 0 ? resolve() : reject(new Error(`${name} failed: ${redactText(stderr.trim() || `exit ${code}`)}`)),
      );
    });
  await Promise.all([finished(restore, "pg_restore"), finished(psql, "psql")]);
}
