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
  /** Fused results wanted. */
  limit: number;
  /** Only this conversation (scope=conversation). */
  conversationId?: string;
}

export interface ScoredMemory {
  memory: Memory;
  /** Reciprocal-rank-fusion score of the dense and the sparse ranking. */
  score: number;
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
  /** Newest first. */
  list(options: { conversationId?: string; limit: number; after?: string }): Promise<MemoryPage>;
  delete(which: MemoryDeletion): Promise<number>;
}

export interface MemoryStore {
  readonly kind: "embedded" | "qdrant";
  /** Creates collections and indexes if missing (idempotent); called at start. */
  ready(): Promise<void>;
  connected(): Promise<boolean>;
  forUser(userId: string): UserMemories;
  close(): Promise<void>;
}

/** Reciprocal rank fusion constant, as Qdrant uses it. */
export const RRF_K = 60;
/** How many candidates each side (dense, sparse) contributes before fusion. */
export const PREFETCH_LIMIT = 100;
