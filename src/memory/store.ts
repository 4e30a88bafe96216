import { relatedCoverage } from "./related-words";
import type { SparseVector } from "./sparse";

/** One stored chunk of a past exchange. */
export interface Memory {
  id: string;
  conversationId: string | null;
  role: "user" | "assistant";
  text: string;
  /** ISO 8601. */
  createdAt: string;
  model: string | null;
  requestId: string;
}

export interface NewMemory extends Memory {
  dense: Float32Array;
  sparse: SparseVector;
}

export interface MemorySearch {
  dense: Float32Array;
  sparse: SparseVector;
  /** The terms each result's `evidence.lexical` and `evidence.related` are measured against (default: `sparse`'s). */
  focus?: SparseVector;
  /** Fused results wanted. */
  limit: number;
  /**
   * Only results whose relevance (relevanceOf their evidence) reaches this, but always the most relevant one, so a
   * caller can still tell "nothing relevant" from "nothing stored". Recall sets it: most of 200 candidates are noise,
   * and copying them out of the store's thread was a third of a search's cost at 100k memories.
   */
  minRelevance?: number;
  /** Only this conversation (scope=conversation). */
  conversationId?: string;
  /**
   * Also the memories written just before and just after the most relevant results (CONTEXT_HITS of them) whose
   * relevance reaches this, ranked just after their hit (see withNeighbours): recall's context, in the same call, so
   * the embedded store answers a recall in one round trip to its thread.
   */
  contextFrom?: number;
}

export interface ScoredMemory {
  memory: Memory;
  /** Reciprocal-rank-fusion score of the dense and the sparse ranking. */
  score: number;
  /** How relevant the memory is on its own (not relative to the other results): recall's gate reads it. */
  evidence: Evidence;
}

export interface Evidence {
  /** The share of the query's IDF mass that the memory's terms cover, 0 to 1 (see queryCoverage). */
  lexical: number;
  /** Cosine similarity of the query's and the memory's dense vectors. */
  dense: number;
  /** The share of the query's content words the memory says or says in other words, 0 to 1 (relatedCoverage). */
  related: number;
}

export interface MemoryPage {
  data: Memory[];
  /** Pass as `after` for the next page; absent on the last page. */
  next?: string;
}

export type MemoryDeletion = { ids: string[] } | { conversationId: string } | { requestId: string } | { all: true };

/**
 * One user's memories. The only way to reach stored memories is `MemoryStore.forUser(userId)`, so a query without
 * the tenant filter cannot be written: every implementation applies the user id to every read and delete.
 */
export interface UserMemories {
  /** Idempotent by id: writing the same chunk again replaces it. */
  upsert(memories: NewMemory[]): Promise<void>;
  /** Hybrid search: dense and BM25 rankings fused with reciprocal rank fusion. */
  search(query: MemorySearch): Promise<ScoredMemory[]>;
  /**
   * For each given memory (one of this user's), the memory stored just before it and just after it in the same
   * conversation (write order, which is time order for write-back and in-order imports): the context around a hit,
   * since what answers a question is often the next turn. Aligned with `of`; each entry has 0 to 2 memories.
   */
  neighbours(of: readonly Memory[]): Promise<Memory[][]>;
  /** Newest first. `after` is a cursor from an earlier page; one this store did not hand out throws InvalidCursorError. */
  list(options: { conversationId?: string; limit: number; after?: string }): Promise<MemoryPage>;
  delete(which: MemoryDeletion): Promise<number>;
}

export interface MemoryStore {
  readonly kind: "embedded" | "qdrant";
  /** Creates collections and indexes if missing (idempotent); called at start. */
  ready(): Promise<void>;
  connected(): Promise<boolean>;
  /** Other collections of this deployment whose names start with `prefix` (earlier embedding models). */
  siblings(prefix: string): Promise<string[]>;
  forUser(userId: string): UserMemories;
  close(): Promise<void>;
}

/** Reciprocal rank fusion constant (sent to Qdrant as `rrf.k`). */
export const RRF_K = 60;
/**
 * Weights of the dense and the sparse ranking in the fusion (Qdrant's `rrf.weights`). BM25 leads: with the built-in
 * word-vector embedder, an equal say for the dense side cost 4 points of LoCoMo evidence recall (bench:memory).
 */
export const FUSION_WEIGHTS = { dense: 0.3, sparse: 1 } as const;
/** How many candidates each side (dense, sparse) contributes before fusion. */
export const PREFETCH_LIMIT = 100;

/**
 * Weighted reciprocal rank fusion of a dense and a sparse ranking (keys best first): key → fused score. The one
 * fusion every store applies (Qdrant's `rrf` with `k` and `weights` computes the same).
 */
export function fuseRankings<K>(dense: readonly K[], sparse: readonly K[]): Map<K, number> {
  const fused = new Map<K, number>();
  const add = (ranked: readonly K[], weight: number) => {
    for (const [rank, key] of ranked.entries()) fused.set(key, (fused.get(key) ?? 0) + weight / (RRF_K + rank + 1));
  };
  add(dense, FUSION_WEIGHTS.dense);
  add(sparse, FUSION_WEIGHTS.sparse);
  return fused;
}

/** BM25's IDF as Qdrant's `modifier: idf` computes it: ln(1 + (N - n + 0.5) / (n + 0.5)). */
export const idf = (documents: number, withTerm: number) =>
  Math.log(1 + (documents - withTerm + 0.5) / (withTerm + 0.5));

/**
 * A query term's weight in queryCoverage: its IDF over the user's memories plus this many imagined memories that do
 * not hold it. Without the prior a user with a handful of memories has no rare words (every term of their two
 * memories is in half of them) and nothing would ever look relevant; with a few thousand memories it hardly counts.
 */
const COVERAGE_PRIOR_DOCUMENTS = 100;
export const coverageIdf = (documents: number, withTerm: number) => idf(documents + COVERAGE_PRIOR_DOCUMENTS, withTerm);

/**
 * The share of a query's IDF mass that a memory's terms cover: 1 when it holds every query term, near 0 when it
 * shares only words this user says all the time. Unlike a BM25 score it does not depend on the other results, so
 * it can say "nothing here is relevant" (a question about something never discussed covers almost nothing).
 */
export function queryCoverage(queryIdf: ReadonlyMap<number, number>, memoryTerms: ArrayLike<number>): number {
  let mass = 0;
  for (const value of queryIdf.values()) mass += value;
  if (mass === 0) return 0;
  let covered = 0;
  for (let i = 0; i < memoryTerms.length; i++) covered += queryIdf.get(memoryTerms[i]!) ?? 0;
  return covered / mass;
}

/**
 * A memory's relevance to the query on an absolute scale (not relative to the other results), 0 to 3: the share of
 * the query's IDF mass it covers, plus the dense cosine, plus its related-word coverage. Calibrated with the built-in
 * embedder on LoCoMo conversations 0-4 and the off-topic questions in bench/ (MEMORY_MIN_RELEVANCE; docs/MEMORY.md).
 */
export const relevanceOf = (e: Evidence) => e.lexical + e.dense + e.related;

/** Related-word coverage is at most this, so a result whose search evidence is further below a gate cannot reach it. */
const MAX_RELATED = 1;

/**
 * Search evidence (coverage and cosine) made whole: each result's related-word coverage of the query's `focus` terms,
 * from its stored terms (`termsOf`), the costliest part of a search's evidence, so computed only for results that
 * may reach `minRelevance` with it (the others keep 0: they cannot reach it anyway).
 */
export function withRelatedWords<T extends { evidence: Omit<Evidence, "related"> }>(
  results: readonly T[],
  focus: ArrayLike<number>,
  termsOf: (result: T) => ArrayLike<number>,
  minRelevance = 0,
): (T & { evidence: Evidence })[] {
  const weighed = results.filter((r) => r.evidence.lexical + r.evidence.dense + MAX_RELATED >= minRelevance);
  const related = relatedCoverage(focus, weighed.map(termsOf));
  const coverage = new Map(weighed.map((r, i) => [r, related[i]!]));
  return results.map((r) => ({ ...r, evidence: { ...r.evidence, related: coverage.get(r) ?? 0 } }));
}

/** A search's results filtered by its `minRelevance` (see MemorySearch), in their order. */
export function relevantOnly<T extends { evidence: Evidence }>(results: T[], minRelevance: number | undefined): T[] {
  if (minRelevance === undefined || results.length === 0) return results;
  let best = results[0]!;
  for (const r of results) if (relevanceOf(r.evidence) > relevanceOf(best.evidence)) best = r;
  return results.filter((r) => r === best || relevanceOf(r.evidence) >= minRelevance);
}

/** How many of the most relevant hits bring the turns written just before and after them into the results. */
const CONTEXT_HITS = 2;
/** A neighbour ranks just after its hit: the hit's search evidence, scaled by this. */
const NEIGHBOUR_SHARE = 0.85;

interface Ranked {
  score: number;
  evidence: Evidence;
}

/** The hits whose neighbours join a search's results: the most relevant that reach `minRelevance`, best first. */
export function contextHits<T extends Ranked>(results: readonly T[], minRelevance: number): T[] {
  return results
    .filter((r) => relevanceOf(r.evidence) >= minRelevance)
    .sort((a, b) => relevanceOf(b.evidence) - relevanceOf(a.evidence))
    .slice(0, CONTEXT_HITS);
}

/**
 * The results plus each hit's neighbours (aligned with `hits`; only their own `evidence.related` is read), each
 * taking its hit's score and a share of its search evidence (coverage and cosine), so it ranks just after it: the
 * answer to a question is often the turn after the one that matches it (+3 points of LoCoMo evidence at 1,000
 * tokens). Its related-word coverage stays its own: the answer says the question in other words more often than in
 * its words (a share of the hit's instead cost 0.8 points). `keyOf` identifies an item.
 */
export function withNeighbours<T extends Ranked>(
  results: readonly T[],
  hits: readonly T[],
  neighbours: readonly (readonly T[])[],
  keyOf: (item: T) => unknown,
): T[] {
  const byKey = new Map(results.map((r) => [keyOf(r), r]));
  hits.forEach((hit, i) => {
    for (const neighbour of neighbours[i] ?? []) {
      const evidence = {
        lexical: hit.evidence.lexical * NEIGHBOUR_SHARE,
        dense: hit.evidence.dense * NEIGHBOUR_SHARE,
        related: neighbour.evidence.related,
      };
      const known = byKey.get(keyOf(neighbour));
      if (known && relevanceOf(known.evidence) >= relevanceOf(evidence)) continue;
      byKey.set(keyOf(neighbour), { ...neighbour, score: hit.score, evidence });
    }
  });
  return [...byKey.values()];
}

/** A page cursor that the store did not hand out. */
export class InvalidCursorError extends Error {
  constructor() {
    super("invalid page cursor");
    this.name = "InvalidCursorError";
  }
}

/** Where a page of a newest-first listing ended: its last timestamp and the ids already returned at it. */
interface PageCursor {
  createdAt: string;
  ids: string[];
}

export function decodeCursor(value: string): PageCursor {
  try {
    const parsed = JSON.parse(Buffer.from(value, "base64url").toString("utf8")) as PageCursor;
    if (typeof parsed.createdAt === "string" && Array.isArray(parsed.ids)) return parsed;
  } catch {}
  throw new InvalidCursorError();
}

/** Whether a memory comes after the cursor in newest-first order (robust to deletions between pages). */
export const isAfterCursor = (m: Memory, cursor: PageCursor | undefined) =>
  !cursor || m.createdAt < cursor.createdAt || (m.createdAt === cursor.createdAt && !cursor.ids.includes(m.id));

/** One page of a newest-first listing from the memories after the cursor (`following`, at least limit + 1 if more). */
export function pageOf(following: Memory[], limit: number, cursor: PageCursor | undefined): MemoryPage {
  const data = following.slice(0, limit);
  const last = data.at(-1);
  if (following.length <= limit || !last) return { data };
  const carried = cursor?.createdAt === last.createdAt ? cursor.ids : [];
  const atLast = data.filter((m) => m.createdAt === last.createdAt).map((m) => m.id);
  const next: PageCursor = { createdAt: last.createdAt, ids: [...carried, ...atLast] };
  return { data, next: Buffer.from(JSON.stringify(next)).toString("base64url") };
}
