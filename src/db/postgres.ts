import pg from "pg";
import { asUserVia } from "./as-user";
import { isDatabaseUnavailable, raisingUnavailable } from "./faults";
import { storableParams } from "./text";
import type { Database, Row, SqlExecutor } from "./types";

// int8 (counts, sums) as numbers, like PGlite; values stay far below 2^53 in this schema.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

export interface PostgresOptions {
  url: string;
  poolSize: number;
  /** Called when an idle pooled client errors (e.g. the server restarted); the pool replaces it. */
  onIdleError?: (error: Error) => void;
}

// Reads may run again on a fresh connection when theirs was cut (a terminated backend, a pooler restart).
const READ_ONLY = /^\s*select\b/i;

function executor(client: pg.Pool | pg.PoolClient, retryReads: boolean): SqlExecutor {
  return {
    async query<T extends Row>(sql: string, params?: readonly unknown[]) {
      const values = storableParams(params);
      try {
        return (await client.query<T>(sql, values)).rows;
      } catch (error) {
        if (!retryReads || !READ_ONLY.test(sql) || !isDatabaseUnavailable(error)) throw error;
        return (await client.query<T>(sql, values)).rows;
      }
    },
    async exec(sql: string) {
      await client.query(sql);
    },
  };
}

export function openPostgres(options: PostgresOptions): Database {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  });
  pool.on("error", (error) => options.onIdleError?.(error));
  const { query, exec } = executor(pool, true);

  async function transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const { client, lost, stopWatching } = await checkOut(pool);
    let broken: Error | undefined;
    try {
      await client.query("begin");
      const result = await fn(executor(client, false));
      await client.query("commit");
      return result;
    } catch (error) {
      await client.query("rollback").catch((rollbackError: Error) => {
        broken = rollbackError;
      });
      throw error;
    } finally {
      // A client whose connection was lost or whose rollback failed is in an unknown state: destroy it instead
      // of returning it to the pool.
      stopWatching();
      client.release(broken ?? lost());
    }
  }

  return raisingUnavailable({
    kind: "postgres",
    query,
    exec,
    transaction,
    asUser: asUserVia(transaction),
    close: () => pool.end(),
  });
}

/**
 * Checks a client out with an error listener attached at once. A checked-out client has no pool listener, and
 * a terminated connection (pg_terminate_backend, a failover) can deliver its error in the same socket read that
 * handed the client over, before an `await pool.connect()` continues: without a listener, Node would crash.
 */
function checkOut(pool: pg.Pool): Promise<{
  client: pg.PoolClient;
  lost: () => Error | undefined;
  stopWatching: () => void;
}> {
  return new Promise((resolve, reject) => {
    pool.connect((error, client) => {
      if (error || !client) return reject(error ?? new Error("no client"));
      let lostWith: Error | undefined;
      const onError = (e: Error) => {
        lostWith = e;
      };
      client.on("error", onError);
      resolve({ client, lost: () => lostWith, stopWatching: () => client.removeListener("error", onError) });
    });
  });
}
