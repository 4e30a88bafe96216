import { QdrantClient } from "@qdrant/js-client-rest";
import {
  decodeCursor,
  FUSION_WEIGHTS,
  isAfterCursor,
  type Memory,
  type MemoryDeletion,
  type MemoryPage,
  type MemorySearch,
  type MemoryStore,
  type NewMemory,
  PREFETCH_LIMIT,
  pageOf,
  RRF_K,
  type ScoredMemory,
  type UserMemories,
} from "./store";

type Filter = { must: object[] };

const DENSE = "dense";
const SPARSE = "bm25";

/**
 * Memories in Qdrant through its official client: one collection per embedding model for all users, a named dense
 * vector (cosine) and a sparse BM25 vector whose IDF Qdrant applies (`modifier: idf`), the user id as a keyword
 * payload index with `is_tenant: true` (Qdrant co-locates each tenant's points), a datetime index on created_at.
 * Every read and delete carries the user filter as a `must` clause, at the top level and inside each prefetch.
 */
export class QdrantMemoryStore implements MemoryStore {
  readonly kind = "qdrant" as const;
  private readonly client: QdrantClient;

  constructor(
    options: { url: string; apiKey?: string; timeoutMs?: number },
    readonly collection: string,
    private readonly dimensions: number,
  ) {
    this.client = new QdrantClient({
      url: options.url,
      apiKey: options.apiKey,
      timeout: options.timeoutMs ?? 10_000,
      // The version check is one more request at start; a mismatch only logs a warning in the client anyway.
      checkCompatibility: false,
    });
  }

  /** Idempotent: creates the collection and its payload indexes only when missing. */
  async ready(): Promise<void> {
    const { exists } = await this.client.collectionExists(this.collection);
    if (!exists) {
      await this.client
        .createCollection(this.collection, {
          vectors: { [DENSE]: { size: this.dimensions, distance: "Cosine" } },
          sparse_vectors: { [SPARSE]: { modifier: "idf" } },
        })
        .catch(async (error: unknown) => {
          // Another replica created it between our check and our create.
          if (!(await this.client.collectionExists(this.collection)).exists) throw error;
        });
    }
    // Creating an index that exists is a no-op in Qdrant, so every replica may run these at start.
    await this.client.createPayloadIndex(this.collection, {
      wait: true,
      field_name: "user_id",
      field_schema: { type: "keyword", is_tenant: true },
    });
    await this.client.createPayloadIndex(this.collection, {
      wait: true,
      field_name: "conversation_id",
      field_schema: "keyword",
    });
    await this.client.createPayloadIndex(this.collection, {
      wait: true,
      field_name: "request_id",
      field_schema: "keyword",
    });
    await this.client.createPayloadIndex(this.collection, {
      wait: true,
      field_name: "created_at",
      field_schema: "datetime",
    });
  }

  async connected(): Promise<boolean> {
    try {
      return (await this.client.collectionExists(this.collection)).exists;
    } catch {
      return false;
    }
  }

  /** Other collections of this deployment (earlier embedding models), for `memory reindex`. */
  async siblings(prefix: string): Promise<string[]> {
    const { collections } = await this.client.getCollections();
    return collections.map((c) => c.name).filter((name) => name.startsWith(prefix) && name !== this.collection);
  }

  forUser(userId: string): UserMemories {
    const tenant = { key: "user_id", match: { value: userId } };
    const filter = (...more: object[]): Filter => ({ must: [tenant, ...more] });
    const { client, collection } = this;
    return {
      upsert: async (memories) => {
        if (memories.length === 0) return;
        await client.upsert(collection, { wait: true, points: memories.map((m) => toPoint(userId, m)) });
      },
      search: async (query: MemorySearch): Promise<ScoredMemory[]> => {
        const scoped = filter(
          ...(query.conversationId === undefined
            ? []
            : [{ key: "conversation_id", match: { value: query.conversationId } }]),
        );
        const prefetch = [
          { query: Array.from(query.dense), using: DENSE, filter: scoped, limit: PREFETCH_LIMIT },
          ...(query.sparse.indices.length > 0
            ? [{ query: query.sparse, using: SPARSE, filter: scoped, limit: PREFETCH_LIMIT }]
            : []),
        ];
        const weights = [FUSION_WEIGHTS.dense, FUSION_WEIGHTS.sparse].slice(0, prefetch.length);
        const { points } = await client.query(collection, {
          prefetch,
          query: { rrf: { k: RRF_K, weights } },
          filter: scoped,
          limit: query.limit,
          with_payload: true,
        });
        return points.map((p) => ({ memory: fromPayload(String(p.id), p.payload), score: p.score }));
      },
      list: async ({ conversationId, limit, after }): Promise<MemoryPage> => {
        const cursor = after === undefined ? undefined : decodeCursor(after);
        const conversation =
          conversationId === undefined ? [] : [{ key: "conversation_id", match: { value: conversationId } }];
        // Newest first from the cursor's timestamp; the points at it that earlier pages returned are skipped.
        const { points } = await client.scroll(collection, {
          filter: filter(...conversation),
          limit: limit + (cursor?.ids.length ?? 0) + 1,
          order_by: { key: "created_at", direction: "desc", ...(cursor && { start_from: cursor.createdAt }) },
          with_payload: true,
          with_vector: false,
        });
        const following = points
          .map((p) => fromPayload(String(p.id), p.payload))
          .filter((m) => isAfterCursor(m, cursor));
        return pageOf(following, limit, cursor);
      },
      delete: async (which: MemoryDeletion): Promise<number> => {
        const selected = filter(...deletionConditions(which));
        const { count } = await client.count(collection, { filter: selected, exact: true });
        if (count === 0) return 0;
        await client.delete(collection, { wait: true, filter: selected });
        return count;
      },
    };
  }

  async close(): Promise<void> {}
}

function deletionConditions(which: MemoryDeletion): object[] {
  if ("ids" in which) return [{ has_id: which.ids }];
  if ("conversationId" in which) return [{ key: "conversation_id", match: { value: which.conversationId } }];
  if ("requestId" in which) return [{ key: "request_id", match: { value: which.requestId } }];
  return [];
}

function toPoint(userId: string, m: NewMemory) {
  return {
    id: m.id,
    vector: { [DENSE]: Array.from(m.dense), [SPARSE]: { indices: m.sparse.indices, values: m.sparse.values } },
    payload: {
      user_id: userId,
      conversation_id: m.conversationId,
      role: m.role,
      text: m.text,
      created_at: m.createdAt,
      model: m.model,
      request_id: m.requestId,
    },
  };
}

function fromPayload(id: string, payload: Record<string, unknown> | null | undefined): Memory {
  const p = payload ?? {};
  return {
    id,
    conversationId: (p.conversation_id as string | null) ?? null,
    role: p.role === "assistant" ? "assistant" : "user",
    text: String(p.text ?? ""),
    createdAt: String(p.created_at),
    model: (p.model as string | null) ?? null,
    requestId: String(p.request_id ?? ""),
  };
}
