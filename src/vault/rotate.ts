import type { Database, SqlExecutor } from "../db";
import type { Vault } from "./index";

export interface RotationReport {
  rotated: number;
  /** Rows whose value could not be opened with any configured key (left untouched). */
  failed: string[];
}

/**
 * Re-encrypts every provider key not yet under the current master key, in small batches. Safe while the server
 * serves traffic (a row changed meanwhile is skipped by the compare-and-set and picked up by the next batch) and
 * resumable (rows already under the current key are never selected again).
 */
export async function rotateProviderKeys(db: Database, vault: Vault, batchSize = 200): Promise<RotationReport> {
  const report: RotationReport = { rotated: 0, failed: [] };
  const prefix = `v1:${vault.currentKeyId}:`;
  for (;;) {
    const rows = await db.query<{ id: string; user_id: string; provider: string; encrypted_key: string }>(
      `select id, user_id, provider, encrypted_key from user_provider_keys
        where left(encrypted_key, $1) <> $2 and not (id = any($3::uuid[]))
        order by id limit $4`,
      [prefix.length, prefix, report.failed, batchSize],
    );
    if (rows.length === 0) return report;
    for (const row of rows) {
      let resealed: string;
      try {
        resealed = vault.seal(row.user_id, row.provider, vault.open(row.user_id, row.provider, row.encrypted_key));
      } catch {
        report.failed.push(row.id);
        continue;
      }
      const updated = await db.query(
        "update user_provider_keys set encrypted_key = $1 where id = $2 and encrypted_key = $3 returning id",
        [resealed, row.id, row.encrypted_key],
      );
      report.rotated += updated.length;
    }
  }
}

/** How many stored provider keys each master key id sealed (the id is the second field of `v1:<id>:...`). */
export async function countByMasterKey(db: SqlExecutor): Promise<{ keyId: string; count: number }[]> {
  return db.query<{ keyId: string; count: number }>(
    `select split_part(encrypted_key, ':', 2) as "keyId", count(*)::int as count
       from user_provider_keys group by 1 order by 1`,
  );
}
