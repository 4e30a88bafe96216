import { terms } from "./text";

/** A sparse vector as Qdrant takes it: unsigned 32-bit term ids and their weights. */
export interface SparseVector {
  indices: number[];
  values: number[];
}

const K1 = 1.2;
const B = 0.75;
/** Typical chunk length in terms; BM25 needs an average and chunks are short turns. */
const AVERAGE_LENGTH = 16;

/** FNV-1a, 32 bits: stable term ids without a vocabulary (collisions are rare and only blur a term's weight). */
export function termId(term: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < term.length; i++) {
    hash ^= term.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/**
 * A document's BM25 term weights without the IDF factor, which the store applies at query time from its own
 * statistics (Qdrant's `modifier: idf`; the embedded store does the same). Works with any dense embedder.
 */
export function bm25Document(text: string): SparseVector {
  const counts = new Map<number, number>();
  const list = terms(text);
  for (const term of list) {
    const id = termId(term);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  const norm = K1 * (1 - B + (B * list.length) / AVERAGE_LENGTH);
  const indices = [...counts.keys()].sort((a, b) => a - b);
  return { indices, values: indices.map((id) => (counts.get(id)! * (K1 + 1)) / (counts.get(id)! + norm)) };
}

/** A query's terms, each once with weight 1: the score is the sum of matching documents' IDF-weighted values. */
export function bm25Query(text: string): SparseVector {
  const indices = [...new Set(terms(text).map(termId))].sort((a, b) => a - b);
  return { indices, values: indices.map(() => 1) };
}
