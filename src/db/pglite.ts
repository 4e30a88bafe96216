import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { PGlite, types } from "@electric-sql/pglite";
import { asUserVia } from "./as-user";
import { raisingUnavailable } from "./faults";
import { storableParams } from "./text";
import type { Database, Row, SqlExecutor } from "./types";

export class DatabaseLockedError extends Error {
  constructor(dataDir: string, pid: number) {
    super(
      `The embedded database in ${dataDir} is open in another Perpetual process (pid ${pid}). ` +
        "Only one process may use it: stop that process first (while a server runs, the CLI runs its commands in it).",
    );
    this.name = "DatabaseLockedError";
  }
}

interface PgliteQueryable {
  query<T>(sql: string, params?: unknown[]): Promise<{ rows: T[] }>;
  exec(sql: string): Promise<unknown>;
}

function executor(target: PgliteQueryable): SqlExecutor {
  return {
    async query<T extends Row>(sql: string, params?: readonly unknown[]) {
      return (await target.query<T>(sql, storableParams(params))).rows;
    },
    async exec(sql: string) {
      await target.exec(sql);
    },
  };
}

// Same JS types as the pg adapter: int8 as number, numeric as string (money must not pass through floats).
const parsers = {
  [types.INT8]: (v: string) => Number(v),
  [types.NUMERIC]: (v: string) => v,
};

/**
 * PostgreSQL compiled to WASM, in-process. With a dataDir it persists there and takes a lock file so that a
 * second process (a CLI run while the server is up) is refused instead of corrupting the files; without one it
 * lives in memory (tests).
 */
export async function openPglite(options: { dataDir?: string } = {}): Promise<Database> {
  const release = options.dataDir ? lockDataDir(options.dataDir) : () => {};
  let db: PGlite;
  try {
    db = await PGlite.create(options.dataDir ? join(options.dataDir, "pglite") : undefined, { parsers });
  } catch (error) {
    release();
    throw error;
  }
  const { query, exec } = executor(db);
  const transaction = <T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> => db.transaction((tx) => fn(executor(tx)));
  return raisingUnavailable({
    kind: "pglite",
    query,
    exec,
    transaction,
    asUser: asUserVia(transaction),
    async close() {
      try {
        await db.close();
      } finally {
        release();
      }
    },
  });
}

function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const lockPath = join(dataDir, "pglite.lock");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockPath, "wx", 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(lockPath, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const holder = Number(readFileSync(lockPath, "utf8").trim());
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
        throw new DatabaseLockedError(dataDir, holder);
      }
      rmSync(lockPath, { force: true }); // left behind by a process that died
    }
  }
  throw new Error(`Cannot lock the embedded database in ${dataDir}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
