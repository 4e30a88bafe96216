import type { Database } from "../db";
import type { Embedder } from "./embedders/types";
import { bm25Document } from "./sparse";
import type { MemoryStore } from "./store";

export interface ReindexReport {
  users: number;
  memories: number;
}

/**
 * Re-embeds every user's memories from `source` (the collection of an earlier embedding model) into `target` with
 * `embedder`, keeping ids, texts, conversations and dates. Users come from the users table, so memories of erased
 * accounts are not carried over. Idempotent (same ids), so an interrupted run can simply be started again.
 */
export async function reindexMemories(options: {
  db: Database;
  source: MemoryStore;
  target: MemoryStore;
  embedder: Embedder;
  batchSize?: number;
  onUser?: (userId: string, memories: number) => void;
}): Promise<ReindexReport> {
  const { db, source, target, embedder } = options;
  const users = await db.query<{ id: string }>("select id::text as id from users order by id");
  const report: ReindexReport = { users: 0, memories: 0 };
  for (const { id } of users) {
    let after: string | undefined;
    let count = 0;
    do {
      const page = await source.forUser(id).list({ limit: options.batchSize ?? 256, after });
      if (page.data.length === 0) break;
      const dense = await embedder.embed(page.data.map((m) => m.text));
      await target
        .forUser(id)
        .upsert(page.data.map((m, i) => ({ ...m, dense: dense[i]!, sparse: bm25Document(m.text) })));
      count += page.data.length;
      after = page.next;
    } while (after);
    if (count > 0) {
      report.users++;
      report.memories += count;
      options.onUser?.(id, count);
    }
  }
  return report;
}
