import type { QdrantClient } from "@qdrant/js-client-rest";
import { bm25Document, type SparseVector } from "./sparse";
import {
  contextHits,
  coverageIdf,
  decodeCursor,
  fuseRankings,
  isAfterCursor,
  type Memory,
  type MemoryDeletion,
  type MemoryPage,
  type MemorySearch,
  type MemoryStore,
  type NewMemory,
  PREFETCH_LIMIT,
  pageOf,
  queryCoverage,
  relevantOnly,
  type ScoredMemory,
  type UserMemories,
  withNeighbours,
  withRelatedWords,
} from "./store";

type Filter = { must: object[] };

const DENSE = "dense";
const SPARSE = "bm25";

/**
 * Memories in Qdrant through its official client: one collection per embedding model for all users, a named dense
 * vector (cosine) and a sparse BM25 vector whose IDF Qdrant applies (`modifier: idf`), the user id as a keyword
 * payload index with `is_tenant: true` (Qdrant co-locates each tenant's points), a datetime index on created_at.
 * Every read and delete carries the user filter as a `must` clause (in each search of a batch too).
 */
export class QdrantMemoryStore implements MemoryStore {
  readonly kind = "qdrant" as const;
  private readonly client: QdrantClient;

  constructor(
    options: { url: string; apiKey?: string; timeoutMs?: number },
    readonly collection: string,
    private readonly dimensions: number,
  ) {
    // The client (~120 modules, ~30 MB resident) only where Qdrant is configured.
    const { QdrantClient } = require("@qdrant/js-client-rest") as typeof import("@qdrant/js-client-rest");
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
    const neighbours = async (of: readonly Memory[]): Promise<Memory[][]> => {
      if (of.length === 0) return [];
      // Per memory, the nearest earlier and later point of its conversation by created_at, in one batch call
      // (a start_from bound is inclusive: the memory itself and same-instant points come back and are skipped).
      const searches = of.flatMap((m) =>
        (["desc", "asc"] as const).map((direction) => ({
          query: { order_by: { key: "created_at", direction, start_from: m.createdAt } },
          filter: filter(
            m.conversationId === null
              ? { is_null: { key: "conversation_id" } }
              : { key: "conversation_id", match: { value: m.conversationId } },
          ),
          limit: 3,
          with_payload: true,
        })),
      );
      const results = await client.queryBatch(collection, { searches });
      return of.map((m, i) =>
        [results[2 * i]!, results[2 * i + 1]!].flatMap(({ points }) => {
          const next = points
            .map((p) => fromPayload(String(p.id), p.payload))
            .find((n) => n.id !== m.id && n.createdAt !== m.createdAt);
          return next ? [next] : [];
        }),
      );
    };
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
        // Both rankings in one round trip, with their raw scores (a fused query returns only the fused score, and
        // recall's relevance gate needs the cosine); fused here with the same RRF every store uses. Each point comes
        // with its stored BM25 terms, so coverage needs no re-tokenizing of 200 texts on the event loop.
        const returned = { limit: PREFETCH_LIMIT, with_payload: true, with_vector: [SPARSE] };
        const searches = [
          { query: Array.from(query.dense), using: DENSE, ...returned, filter: scoped },
          ...(query.sparse.indices.length > 0
            ? [{ query: query.sparse, using: SPARSE, ...returned, filter: scoped }]
            : []),
        ];
        const [dense, sparse = { points: [] }] = await client.queryBatch(collection, { searches });
        const found = new Map<string, Memory>();
        const termsOf = new Map<string, number[]>();
        const cosine = new Map<string, number>();
        for (const p of [...dense!.points, ...sparse.points]) {
          found.set(String(p.id), fromPayload(String(p.id), p.payload));
          termsOf.set(String(p.id), storedTerms(p.vector));
        }
        for (const p of dense!.points) cosine.set(String(p.id), p.score);
        const fused = fuseRankings(
          dense!.points.map((p) => String(p.id)),
          sparse.points.map((p) => String(p.id)),
        );
        const focus = query.focus ?? query.sparse;
        const queryIdf = candidateIdf(focus, [...termsOf.values()]);
        const searched = [...fused]
          .sort((a, b) => b[1] - a[1])
          .slice(0, query.limit)
          .map(([id, score]) => ({
            memory: found.get(id)!,
            score,
            evidence: {
              lexical: queryCoverage(queryIdf, termsOf.get(id)!),
              // Outside the dense top PREFETCH_LIMIT: below its last cosine; 0 leaves the gate to the other evidence.
              dense: cosine.get(id) ?? 0,
            },
          }));
        const ranked = withRelatedWords(searched, focus.indices, (r) => termsOf.get(r.memory.id)!, query.minRelevance);
        const kept = relevantOnly(ranked, query.minRelevance);
        const hits = query.contextFrom === undefined ? [] : contextHits(kept, query.contextFrom);
        if (hits.length === 0) return kept;
        // The context around the best hits: a second call, only when a hit reaches it. Their terms from their text:
        // four short turns, not worth fetching their vectors.
        const around = (await neighbours(hits.map((h) => h.memory))).map((ms) =>
          withRelatedWords(
            ms.map((memory) => ({ memory, score: 0, evidence: { lexical: 0, dense: 0 } })),
            focus.indices,
            (r) => bm25Document(r.memory.text).indices,
          ),
        );
        return withNeighbours(kept, hits, around, (r) => r.memory.id);
      },
      neighbours,
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

/** A point's stored BM25 term ids (requested with `with_vector: ["bm25"]`). */
function storedTerms(vector: unknown): number[] {
  const sparse = (vector as Record<string, { indices?: number[] }> | null | undefined)?.[SPARSE];
  return sparse?.indices ?? [];
}

/**
 * Qdrant keeps its document frequencies to itself, so the query terms' IDF is estimated over the candidates both
 * searches returned (a term none of them holds gets the highest): an approximation of the embedded store's exact
 * per-user IDF that keeps "nothing relevant" recognisable.
 */
function candidateIdf(query: SparseVector, candidateTerms: readonly number[][]): Map<number, number> {
  const held = candidateTerms.map((terms) => new Set(terms));
  return new Map(
    query.indices.map((term, i) => [
      term,
      coverageIdf(held.length, held.filter((t) => t.has(term)).length) * query.values[i]!,
    ]),
  );
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
