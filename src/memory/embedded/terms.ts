import type { SparseVector } from "../sparse";

/**
 * Term ids inside the engine are int32: the sparse vectors' uint32 ids above 2^30 are heap numbers in V8, and Map
 * lookups keyed by them were a measurable part of a search at 100k memories (small integers are unboxed and hash
 * fast). The log and everything the engine hands out keep the uint32 ids.
 */
export const termKey = (term: number) => term | 0;

/**
 * A query's distinct terms, each with its BM25 query weight (0 when the term is only in `focus`) and its weight in
 * the coverage evidence (0 when only in `sparse`), and a small open-addressing table from term id to position, so a
 * scan over a user's stored terms tests each against the query in a few integer operations.
 */
export class QueryTerms {
  readonly ids: number[] = [];
  readonly ranking: number[] = [];
  readonly focus: number[] = [];
  private readonly keys: Int32Array;
  private readonly positions: Int32Array;
  private readonly shift: number;

  constructor(sparse: SparseVector, focus: SparseVector) {
    const at = new Map<number, number>();
    const place = (term: number) => {
      const key = termKey(term);
      let i = at.get(key);
      if (i === undefined) {
        i = this.ids.push(key) - 1;
        this.ranking.push(0);
        this.focus.push(0);
        at.set(key, i);
      }
      return i;
    };
    sparse.indices.forEach((term, i) => {
      this.ranking[place(term)] = sparse.values[i]!;
    });
    focus.indices.forEach((term, i) => {
      this.focus[place(term)] = focus.values[i]!;
    });
    const bits = Math.max(4, Math.ceil(Math.log2(this.ids.length * 4 + 1)));
    this.shift = 32 - bits;
    this.keys = new Int32Array(1 << bits);
    this.positions = new Int32Array(1 << bits); // position + 1; 0 is an empty cell
    const mask = (1 << bits) - 1;
    this.ids.forEach((key, i) => {
      let cell = Math.imul(key, 0x9e3779b1) >>> this.shift;
      while (this.positions[cell] !== 0) cell = (cell + 1) & mask;
      this.keys[cell] = key;
      this.positions[cell] = i + 1;
    });
  }

  /** The term's position in `ids`, or -1. */
  indexOf(key: number): number {
    const mask = this.keys.length - 1;
    for (let cell = Math.imul(key, 0x9e3779b1) >>> this.shift; ; cell = (cell + 1) & mask) {
      const position = this.positions[cell]!;
      if (position === 0) return -1;
      if (this.keys[cell] === key) return position - 1;
    }
  }
}

/**
 * BM25 document weights (always below K1 + 1 = 2.2, about 1 for a term said once in a memory of average length) are
 * kept as bytes over 0 to 2.2: 0.009 apart, below the score differences that rank (bench:memory unchanged), at a
 * quarter of the memory of float32 (the terms are a third of a memory's footprint).
 */
const MAX_DOCUMENT_WEIGHT = 2.2;
export const WEIGHT_SCALE = 255 / MAX_DOCUMENT_WEIGHT;
export const quantizeWeight = (weight: number) => Math.min(255, Math.max(0, Math.round(weight * WEIGHT_SCALE)));

/** The slots holding one term, with the term's weight in each; `live` counts the live ones (document frequency). */
export class Postings {
  slots = new Int32Array(4);
  weights = new Uint8Array(4);
  length = 0;
  live = 0;

  add(slot: number, weight: number): void {
    if (this.length === this.slots.length) {
      const size = Math.ceil(this.length * 1.5);
      this.slots = resized(this.slots, size);
      this.weights = resized(this.weights, size);
    }
    this.slots[this.length] = slot;
    this.weights[this.length++] = weight;
    this.live++;
  }

  trim(): void {
    this.slots = resized(this.slots, this.length);
    this.weights = resized(this.weights, this.length);
  }
}

type Growable = Int8Array | Uint8Array | Int32Array | Float64Array;

/** `array` with room for exactly `size` elements: a copy of as many as fit (the array itself if its size). */
export function resized<T extends Growable>(array: T, size: number): T {
  if (size === array.length) return array;
  const copy = new (array.constructor as new (length: number) => T)(size);
  copy.set(array.length <= size ? array : array.subarray(0, size));
  return copy;
}
