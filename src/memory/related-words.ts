import { SCRATCH_BYTES, type WordVectors, wordVectors } from "./embedders/word-vectors";

/**
 * A related word counts from this word-vector cosine up (credited with the cosine itself; the word itself counts 1).
 * Measured on LoCoMo conversations 0–4: 0.3 and 0.4 gave the same recall.
 */
const RELATED_COSINE = 0.3;
/**
 * At most this many of the query's distinct content words are weighed, the rarest first (the most weight): a
 * question has a few, but a recall query may be 2,000 characters, and the work grows with each word weighed.
 */
const MAX_QUERY_WORDS = 12;

/**
 * Related-word coverage of each memory: the share of the query's content words (its BM25 terms, each standing for
 * its stem's most frequent word and weighted by that word's SIF weight, so rare words count more) that the memory
 * says, or says in other words. Each query word is credited with its best match among the memory's: 1 for itself,
 * the cosine of the built-in word vectors for a related word ("pets" ~ "dog", "kids" ~ "children") from
 * RELATED_COSINE up, else nothing. BM25 coverage misses what a memory says in other words, and a sentence's averaged
 * vector blurs a question's few key words into its topic: this sits between (+3 points of LoCoMo evidence recall,
 * +6 on open-domain questions; docs/MEMORY.md). 0 to 1.
 *
 * Terms in, not texts: the stores keep each memory's terms, so nothing is tokenized here. The cosines are computed
 * once per distinct word of the memories and query word, in WebAssembly (kernels.wat).
 */
export function relatedCoverage(queryTerms: ArrayLike<number>, memoriesTerms: readonly ArrayLike<number>[]): number[] {
  const vectors = wordVectors();
  const { termRows, weights } = vectors;
  const known = new Set<number>();
  const unknownTerms = new Set<number>();
  for (let i = 0; i < queryTerms.length; i++) {
    const row = termRows.rowOf(queryTerms[i]!);
    if (row >= 0) known.add(row);
    else unknownTerms.add(queryTerms[i]! | 0);
  }
  const queryRows = [...known].sort((a, b) => b - a).slice(0, MAX_QUERY_WORDS);
  // Terms outside the vocabulary (names, rare terms) are BM25's to match, except in a question made only of them
  // ("Who is Ottilie?"): then they count as the rarest words do, matched by themselves. Counting them always cost
  // 3 points of LoCoMo recall at the same off-topic abstention: a question's rare word is often not in its answer.
  const queryUnknown = queryRows.length > 0 ? [] : [...unknownTerms].slice(0, MAX_QUERY_WORDS);
  let mass = queryUnknown.length * UNKNOWN_WEIGHT;
  for (const row of queryRows) mass += weights[row]!;
  if (mass === 0) return memoriesTerms.map(() => 0);

  // Each memory's rows, and the list of distinct rows (so each row's cosines are computed once).
  if (positionOf.length < weights.length) positionOf = new Int32Array(weights.length).fill(-1);
  const distinct: number[] = [];
  const rowsOf = memoriesTerms.map((terms) => {
    const rows: number[] = [];
    for (let i = 0; i < terms.length; i++) {
      const row = termRows.rowOf(terms[i]!);
      if (row < 0) continue;
      rows.push(row);
      if (positionOf[row] === -1) positionOf[row] = distinct.push(row) - 1;
    }
    return rows;
  });
  const dots = dotsOf(vectors, distinct, queryRows);
  const scale = 1 / (vectors.scale * vectors.scale);
  const threshold = RELATED_COSINE / scale;
  const best = new Int32Array(queryRows.length);
  const coverage = rowsOf.map((rows, m) => {
    best.fill(0);
    for (const row of rows) {
      const at = positionOf[row]! * queryRows.length;
      for (let k = 0; k < queryRows.length; k++) if (dots[at + k]! > best[k]!) best[k] = dots[at + k]!;
    }
    let covered = 0;
    for (let k = 0; k < queryRows.length; k++) {
      if (best[k]! >= threshold) covered += weights[queryRows[k]!]! * Math.min(1, best[k]! * scale);
    }
    if (queryUnknown.length > 0) covered += UNKNOWN_WEIGHT * sharedTerms(queryUnknown, memoriesTerms[m]!);
    return covered / mass;
  });
  for (const row of distinct) positionOf[row] = -1;
  return coverage;
}

/** The SIF weight of the vocabulary's rarest words, for terms outside it. */
const UNKNOWN_WEIGHT = 1;

/** A vocabulary row's position in the current call's list of distinct rows (-1 between calls). */
let positionOf = new Int32Array(0);

/** How many of `terms` (int32) a memory's terms hold. */
function sharedTerms(terms: readonly number[], memoryTerms: ArrayLike<number>): number {
  let shared = 0;
  for (const term of terms) {
    for (let i = 0; i < memoryTerms.length; i++) {
      if ((memoryTerms[i]! | 0) === term) {
        shared++;
        break;
      }
    }
  }
  return shared;
}

/**
 * Dot products of each of `rows` with each of `queryRows` (row-major, rows × queryRows; the rows' scale squared is
 * a cosine of 1), by the dots16 kernel over the vectors where they are, in its memory: only row numbers go in,
 * through this thread's scratch region.
 */
function dotsOf(vectors: WordVectors, rows: readonly number[], queryRows: readonly number[]): Int32Array {
  const { kernels, stride } = vectors;
  const queries = queryRows.length;
  const out = new Int32Array(rows.length * queries);
  // In batches that fit the scratch: the query's row numbers, a batch's, and its products.
  const batch = Math.max(1, Math.floor((SCRATCH_BYTES / 4 - queries) / (1 + queries)));
  const at = vectors.scratch;
  const scratch = new Int32Array(kernels.memory.buffer, at, SCRATCH_BYTES / 4);
  scratch.set(queryRows, 0);
  for (let from = 0; from < rows.length; from += batch) {
    const count = Math.min(batch, rows.length - from);
    for (let i = 0; i < count; i++) scratch[queries + i] = rows[from + i]!;
    const outAt = queries + count;
    kernels.dots16(0, stride * 2, at + queries * 4, count, at, queries, at + outAt * 4);
    out.set(scratch.subarray(outAt, outAt + count * queries), from * queries);
  }
  return out;
}
