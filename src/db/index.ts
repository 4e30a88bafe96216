import type { Config } from "../config";
import { openPglite } from "./pglite";
import { openPostgres } from "./postgres";
import type { Database } from "./types";

export { migrate, pendingMigrations, readMigrations } from "./migrate";
export { DatabaseLockedError, openPglite } from "./pglite";
export { openPostgres } from "./postgres";
export type { Database, Row, SqlExecutor } from "./types";

/** PostgreSQL (Supabase or any) when DATABASE_URL is set, otherwise the embedded PGlite under DATA_DIR. */
export function openDatabase(
  config: Pick<Config, "database" | "dataDir">,
  onIdleError?: (error: Error) => void,
): Promise<Database> {
  const { url, poolSize } = config.database;
  if (url) return Promise.resolve(openPostgres({ url, poolSize, onIdleError }));
  return openPglite({ dataDir: config.dataDir });
}
export { DatabaseUnavailableError, isDataError } from "./faults";
export { storableJson, storableText } from "./text";
