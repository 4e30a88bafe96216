import { SCRATCH_BYTES, type WordVectors, wordVectors } from "./embedders/word-vectors";
import { isStopWord, STOP_WORDS } from "./text";

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
 * Related-word coverage of each text: the share of the query's content words (stop words dropped, each weighted by
 * its SIF weight, so rare words count more) that the text says, or says in other words. Each query word is credited
 * with its best match among the text's words: 1 for itself, the cosine of the built-in word vectors for a related
 * word ("pets" ~ "dog", "kids" ~ "children") from RELATED_COSINE up, else nothing. BM25 coverage misses what a
 * memory says in other words, and a sentence's averaged vector blurs a question's few key words into its topic:
 * this sits between (+3 points of LoCoMo evidence recall, +6 on open-domain questions; docs/MEMORY.md). 0 to 1.
 *
 * The cosines are computed once per distinct word of the texts and query word, in WebAssembly (kernels.wat).
 */
export function relatedCoverage(query: string, texts: readonly string[]): number[] {
  const vectors = wordVectors();
  const asked = contentWords(vectors, query);
  const queryRows = [...new Set(asked.rows)].sort((a, b) => b - a).slice(0, MAX_QUERY_WORDS);
  // Words outside the vocabulary (names, rare terms) are BM25's to match, except in a question made only of them
  // ("Who is Ottilie?"): then they count as the rarest words do, matched by themselves. Counting them always cost
  // 3 points of LoCoMo recall at the same off-topic abstention: a question's rare word is often not in its answer.
  const queryUnknown = queryRows.length > 0 ? [] : [...new Set(asked.unknown)].slice(0, MAX_QUERY_WORDS);
  let mass = queryUnknown.length * UNKNOWN_WEIGHT;
  for (const row of queryRows) mass += vectors.weights[row]!;
  if (mass === 0) return texts.map(() => 0);

  // Each text as positions in the list of distinct rows, so each row's cosines are computed once.
  if (positionOf.length < vectors.weights.length) positionOf = new Int32Array(vectors.weights.length).fill(-1);
  const distinct: number[] = [];
  const said = texts.map((text) => contentWords(vectors, text));
  for (const { rows } of said) {
    for (const row of rows) if (positionOf[row] === -1) positionOf[row] = distinct.push(row) - 1;
  }
  const dots = dotsOf(vectors, distinct, queryRows);
  const scale = 1 / (vectors.scale * vectors.scale);
  const threshold = RELATED_COSINE / scale;
  const best = new Int32Array(queryRows.length);
  const coverage = said.map(({ rows, unknown }) => {
    best.fill(0);
    for (const row of rows) {
      const at = positionOf[row]! * queryRows.length;
      for (let k = 0; k < queryRows.length; k++) if (dots[at + k]! > best[k]!) best[k] = dots[at + k]!;
    }
    let covered = 0;
    for (let k = 0; k < queryRows.length; k++) {
      if (best[k]! >= threshold) covered += vectors.weights[queryRows[k]!]! * Math.min(1, best[k]! * scale);
    }
    for (const word of queryUnknown) if (unknown.includes(word)) covered += UNKNOWN_WEIGHT;
    return covered / mass;
  });
  for (const row of distinct) positionOf[row] = -1;
  return coverage;
}

/** The SIF weight of the vocabulary's rarest words, for words outside it. */
const UNKNOWN_WEIGHT = 1;

/** A vocabulary row's position in the current call's list of distinct rows (-1 between calls). */
let positionOf = new Int32Array(0);

/** A text's content words (stop words dropped): the vocabulary's rows, in order, and the words outside it. */
interface ContentWords {
  rows: number[];
  unknown: string[];
}

/**
 * A text's content words, remembered for recently seen texts: a user's strong matches come back as candidates
 * question after question, and tokenizing 200 of them was half of this function's cost. Two generations instead of
 * an LRU (when the recent one is full it becomes the older one, and what recurs is copied back on use): an LRU's
 * bookkeeping on each miss cost more than tokenizing when 200 candidates were new. Bounded in characters.
 */
function contentWords(vectors: WordVectors, text: string): ContentWords {
  let found = recentWords.get(text);
  if (found) return found;
  found = olderWords.get(text) ?? tokenize(vectors, text);
  if (recentChars >= RECENT_CHARS) {
    olderWords = recentWords;
    recentWords = new Map();
    recentChars = 0;
  }
  recentWords.set(text, found);
  recentChars += text.length;
  return found;
}

/** A text's content words, read. */
function tokenize(vectors: WordVectors, text: string): ContentWords {
  const rows: number[] = [];
  const unknown: string[] = [];
  const stop = stopRowsOf(vectors);
  vectors.vocabulary.forEachWord(text, (row, word) => {
    if (row >= 0) {
      if (stop[row] === 0) rows.push(row);
    } else if (!isStopWord(word!)) unknown.push(word!);
  });
  // A plain array: allocating a typed array per text cost a quarter of tokenizing 200 new texts.
  return { rows, unknown };
}

/** Row → 1 for a stop word. */
let stopRows: Uint8Array | undefined;
function stopRowsOf(vectors: WordVectors): Uint8Array {
  if (stopRows) return stopRows;
  stopRows = new Uint8Array(vectors.weights.length);
  for (const word of STOP_WORDS) {
    const row = vectors.vocabulary.rowOf(word);
    if (row >= 0) stopRows[row] = 1;
  }
  return stopRows;
}

/** Texts seen lately and their words: two generations of up to this many characters each (~4 MB in all). */
const RECENT_CHARS = 1 << 20;
let recentWords = new Map<string, ContentWords>();
let olderWords = new Map<string, ContentWords>();
let recentChars = 0;

/**
 * Dot products of each of `rows` with each of `queryRows` (row-major, rows × queryRows; the rows' scale squared is
 * a cosine of 1), by the dots16 kernel over the vectors where they are, in its memory: only row numbers go in.
 */
function dotsOf(vectors: WordVectors, rows: readonly number[], queryRows: readonly number[]): Int32Array {
  const { kernels, stride } = vectors;
  const tableBytes = vectors.vectors.byteLength;
  const queries = queryRows.length;
  const out = new Int32Array(rows.length * queries);
  // In batches that fit the scratch after the table: the query's row numbers, a batch's, and its products.
  const batch = Math.max(1, Math.floor((SCRATCH_BYTES / 4 - queries) / (1 + queries)));
  const scratch = new Int32Array(kernels.memory.buffer, tableBytes, SCRATCH_BYTES / 4);
  scratch.set(queryRows, 0);
  for (let from = 0; from < rows.length; from += batch) {
    const count = Math.min(batch, rows.length - from);
    for (let i = 0; i < count; i++) scratch[queries + i] = rows[from + i]!;
    const outAt = queries + count;
    kernels.dots16(0, stride * 2, tableBytes + queries * 4, count, tableBytes, queries, tableBytes + outAt * 4);
    out.set(scratch.subarray(outAt, outAt + count * queries), from * queries);
  }
  return out;
}
