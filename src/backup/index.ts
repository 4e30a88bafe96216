import { chmod, mkdir, open, readdir, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import type { Database } from "../db";
import type { Vault } from "../vault";
import { digest } from "./digest";
import { appliedMigrations, assertClientTools, countRows, dumpData, loadData, PERPETUAL_TABLES } from "./postgres";
import type { QdrantSnapshots } from "./qdrant";

export { libpqTarget, PERPETUAL_TABLES } from "./postgres";
export { QdrantSnapshots } from "./qdrant";

/**
 * Backups of an external deployment: the data of Perpetual's PostgreSQL tables (pg_dump, custom format) and a
 * snapshot of every memory collection in Qdrant, described by a manifest with checksums. PostgreSQL is dumped
 * first: memory writes still pending then sit in memory_outbox inside the dump and are replayed after a restore,
 * so nothing written before the backup started is lost between the two.
 */

const MANIFEST = "manifest.json";
const FORMAT = "perpetual-backup/1";
const POSTGRES_FILE = "postgres.dump";

const fileEntry = {
  file: z.string().regex(/^[A-Za-z0-9._-]+$/),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  bytes: z.number().int().nonnegative(),
};
const manifestSchema = z.object({
  format: z.literal(FORMAT),
  createdAt: z.string(),
  appVersion: z.string(),
  postgres: z.object({
    ...fileEntry,
    serverVersion: z.string(),
    migrations: z.array(z.string()),
    rows: z.record(z.string(), z.number().int().nonnegative()),
    masterKeyIds: z.array(z.string()),
  }),
  qdrant: z.array(z.object({ ...fileEntry, collection: z.string(), points: z.number().int().nonnegative() })),
});
export type Manifest = z.infer<typeof manifestSchema>;

export interface BackupTarget {
  db: Database;
  databaseUrl: string;
  /** Absent when memories live elsewhere (embedded store) or nowhere. */
  qdrant?: QdrantSnapshots;
  /** Memory collections are `<QDRANT_COLLECTION>_<embedding model>`. */
  collectionPrefix: string;
}

type Log = (line: string) => void;

export async function createBackup(target: BackupTarget, dir: string, appVersion: string, log: Log): Promise<Manifest> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if ((await readdir(dir)).length > 0) throw new Error(`${dir} is not empty: back up into a new directory`);
  // The dump holds API key hashes and sealed provider keys: readable by the operator only.
  await chmod(dir, 0o700);
  await assertClientTools(target.db, ["pg_dump"]);

  const postgresPath = join(dir, POSTGRES_FILE);
  const state = await dumpData(target.db, target.databaseUrl, postgresPath);
  await chmod(postgresPath, 0o600);
  const postgres = { file: POSTGRES_FILE, ...(await digest(postgresPath)), ...state };
  log(`PostgreSQL: ${Object.values(state.rows).reduce((a, b) => a + b, 0)} rows → ${POSTGRES_FILE}`);

  const qdrant: Manifest["qdrant"] = [];
  for (const collection of (await target.qdrant?.collections(target.collectionPrefix)) ?? []) {
    const file = `qdrant-${collection}.snapshot`;
    const saved = await target.qdrant!.save(collection, join(dir, file));
    qdrant.push({ collection, file, ...saved });
    log(`Qdrant: ${collection} (${saved.points} points) → ${file}`);
  }

  const manifest: Manifest = { format: FORMAT, createdAt: new Date().toISOString(), appVersion, postgres, qdrant };
  // Written last and renamed into place: a directory with a manifest is a complete backup.
  const partial = join(dir, `${MANIFEST}.partial`);
  const handle = await open(partial, "wx", 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(manifest, null, 2)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(partial, join(dir, MANIFEST));
  return manifest;
}

export interface RestoreOptions {
  /** Empty Perpetual's tables and replace the memory collections instead of refusing a non-empty target. */
  replace: boolean;
  /** Brings the target's schema up to date; runs once the backup's files are known to be intact. */
  migrate: () => Promise<unknown>;
  /** The configured vault: every key id in the backup must be one it holds, or the restored keys are useless. */
  vault: Vault;
}

/**
 * Restores a backup into a database (and Qdrant). The manifest and every file's checksum are checked first, then
 * the target is migrated (a no-op when it is up to date), then the migration history, the master keys and that
 * the target is empty (or `replace`) are checked before any data changes. PostgreSQL is loaded in one
 * transaction; row counts are compared with the manifest after.
 */
export async function restoreBackup(target: BackupTarget, dir: string, options: RestoreOptions, log: Log) {
  const manifest = await readManifest(dir);
  for (const entry of [manifest.postgres, ...manifest.qdrant]) {
    const actual = await digest(join(dir, entry.file));
    if (actual.sha256 !== entry.sha256 || actual.bytes !== entry.bytes) {
      throw new Error(`${entry.file} does not match its checksum in ${MANIFEST}: the backup is damaged`);
    }
  }
  await assertClientTools(target.db, ["pg_restore", "psql"]);
  await options.migrate();

  const applied = new Set(await appliedMigrations(target.db));
  const newer = manifest.postgres.migrations.filter((m) => !applied.has(m));
  if (newer.length > 0) {
    throw new Error(
      `the backup was made by a newer Perpetual (${manifest.appVersion}, migration ${newer.join(", ")}): restore with that version`,
    );
  }
  const missingKeys = manifest.postgres.masterKeyIds.filter((id) => options.vault.keyStateOf(id) === "unknown");
  if (missingKeys.length > 0) {
    throw new Error(
      `provider keys in the backup are sealed under master key(s) ${missingKeys.join(", ")}, which are not configured: ` +
        "set API_KEY_ENCRYPTION_KEY (or API_KEY_ENCRYPTION_KEYS_PREVIOUS) to the key in use when the backup was made",
    );
  }
  if (manifest.qdrant.length > 0 && !target.qdrant) {
    throw new Error("the backup holds Qdrant collections: set QDRANT_URL (and QDRANT_API_KEY) to restore them");
  }

  const occupied = Object.entries(await countRows(target.db, PERPETUAL_TABLES))
    .filter(([, count]) => count > 0)
    .map(([table, count]) => `${table} (${count} rows)`);
  for (const { collection } of manifest.qdrant) {
    const points = await target.qdrant!.points(collection);
    if (points) occupied.push(`Qdrant ${collection} (${points} points)`);
  }
  if (occupied.length > 0 && !options.replace) {
    throw new Error(`the target is not empty: ${occupied.join(", ")}. Restore into an empty one, or pass --replace`);
  }

  await loadData(target.databaseUrl, join(dir, manifest.postgres.file), { replace: options.replace });
  const restored = await countRows(target.db, PERPETUAL_TABLES);
  const wrong = PERPETUAL_TABLES.filter((t) => restored[t] !== (manifest.postgres.rows[t] ?? 0));
  if (wrong.length > 0) {
    throw new Error(
      `restored row counts differ from the backup: ${wrong.map((t) => `${t} ${restored[t]} ≠ ${manifest.postgres.rows[t] ?? 0}`).join(", ")}`,
    );
  }
  log(`PostgreSQL: ${Object.values(restored).reduce((a, b) => a + b, 0)} rows restored from ${manifest.createdAt}`);

  for (const entry of manifest.qdrant) {
    await target.qdrant!.load(entry.collection, join(dir, entry.file), entry.sha256);
    const points = await target.qdrant!.points(entry.collection);
    if (points === undefined) throw new Error(`Qdrant did not restore ${entry.collection}`);
    log(`Qdrant: ${entry.collection} restored, ${points} points (${entry.points} when the snapshot was taken)`);
  }
  const older = [...applied].filter((m) => !manifest.postgres.migrations.includes(m));
  if (older.length > 0)
    log(`Note: the backup predates migration(s) ${older.join(", ")}; the data was loaded into the current schema.`);
  return manifest;
}

async function readManifest(dir: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST), "utf8");
  } catch {
    throw new Error(`${dir} has no ${MANIFEST}: not a Perpetual backup, or an incomplete one`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${join(dir, MANIFEST)} is not valid JSON: the backup is damaged`);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success)
    throw new Error(`${join(dir, MANIFEST)} is not a ${FORMAT} manifest: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}
