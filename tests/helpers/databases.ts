import { type Database, openPglite, openPostgres } from "../../src/db";
import { createTestDatabase } from "./postgres";

export interface OpenedDatabase {
  db: Database;
  cleanup: () => Promise<void>;
}

/** Both adapters, so storage tests prove the same behaviour on real PostgreSQL 15 and on embedded PGlite. */
export const ADAPTERS: Array<[string, (poolSize?: number) => Promise<OpenedDatabase>]> = [
  [
    "PostgreSQL 15",
    async (poolSize = 4) => {
      const database = await createTestDatabase();
      const db = openPostgres({ url: database.url, poolSize });
      return {
        db,
        cleanup: async () => {
          await db.close();
          await database.drop();
        },
      };
    },
  ],
  [
    "PGlite",
    async () => {
      const db = await openPglite();
      return { db, cleanup: () => db.close() };
    },
  ],
];
