import pg from "pg";
import { asUserVia } from "./as-user";
import type { Database, Row, SqlExecutor } from "./types";

// int8 (counts, sums) as numbers, like PGlite; values stay far below 2^53 in this schema.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

export interface PostgresOptions {
  url: string;
  poolSize: number;
  /** Called when an idle pooled client errors (e.g. the server restarted); the pool replaces it. */
  onIdleError?: (error: Error) => void;
}

function executor(client: pg.Pool | pg.PoolClient): SqlExecutor {
  return {
    async query<T extends Row>(sql: string, params?: readonly unknown[]) {
      const result = await client.query<T>(sql, params as unknown[] | undefined);
      return result.rows;
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
  const { query, exec } = executor(pool);

  async function transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      await client.query("begin");
      const result = await fn(executor(client));
      await client.query("commit");
      return result;
    } catch (error) {
      await client.query("rollback").catch((rollbackError: Error) => {
        broken = rollbackError;
      });
      throw error;
    } finally {
      // A client whose rollback failed is in an unknown state: destroy it instead of returning it to the pool.
      client.release(broken);
    }
  }

  return {
    kind: "postgres",
    query,
    exec,
    transaction,
    asUser: asUserVia(transaction),
    close: () => pool.end(),
  };
}
