import { instantiateKernels, type Kernels, reserve } from "./kernels";
import { TopK } from "./top-k";

/** Query components are scaled to int16 within ±QUERY_SCALE for the dot kernel (see kernels.wat on overflow). */
const QUERY_SCALE = 8_191;
const align16 = (bytes: number) => Math.ceil(bytes / 16) * 16;

/**
 * Binary quantization with rescoring, as Qdrant's: each vector keeps one bit per dimension (the sign after
 * subtracting the user's mean vector, so bits split evenly); a search compares the query's bits with every code by
 * Hamming distance, and rescores the closest few thousand exactly. Both loops run in WebAssembly with 128-bit SIMD
 * (kernels.wat: a popcount of 16 bytes per instruction, int8 × int16 dot products 8 lanes at a time), over the codes
 * and a padded copy of the int8 vectors kept in the instance's memory.
 */
export class SignCodes {
  /** 16-byte chunks per code, bytes per vector (both padded to 16), and the scratch areas' offsets. */
  private readonly chunks: number;
  private readonly width: number;
  private readonly mean: Float32Array;
  private kernels: Kernels;
  private capacity = 0;
  private layout = { queryCode: 0, queryVector: 0, histogram: 0, candidates: 0, dots: 0, distances: 0, alive: 0 };
  private codesAt = 0;
  private vectorsAt = 0;
  /** Live vectors when the mean was last taken; codes are rebuilt when the index has doubled since. */
  builtAt = 0;

  /** Whether codes can serve this many dimensions (the Hamming kernel counts in byte lanes). */
  static supports(dimensions: number): boolean {
    return Math.ceil(dimensions / 128) < 32;
  }

  constructor(
    private readonly dimensions: number,
    /** How many nearest by code a search rescores (Qdrant's oversampling). */
    private readonly rescored: number,
  ) {
    this.chunks = Math.ceil(dimensions / 128);
    this.width = align16(dimensions);
    this.mean = new Float32Array(dimensions);
    this.kernels = instantiateKernels();
  }

  /** Takes the mean of the live vectors (int8, `dimensions` per slot) and encodes every slot. */
  rebuild(vectors: Int8Array, slots: number, alive: Uint8Array, live: number): void {
    const dims = this.dimensions;
    const sum = new Float64Array(dims);
    for (let slot = 0; slot < slots; slot++) {
      if (alive[slot] === 0) continue;
      for (let d = 0; d < dims; d++) sum[d]! += vectors[slot * dims + d]!;
    }
    for (let d = 0; d < dims; d++) this.mean[d] = sum[d]! / Math.max(1, live);
    this.reserve(slots);
    for (let slot = 0; slot < slots; slot++) this.encode(slot, vectors.subarray(slot * dims, (slot + 1) * dims));
    this.builtAt = live;
  }

  /** Stores a slot's code and vector (int8). */
  encode(slot: number, vector: Int8Array): void {
    this.reserve(slot + 1);
    const buffer = this.kernels.memory.buffer;
    this.writeCode(vector, new Int32Array(buffer, this.codesAt + slot * this.chunks * 16, this.chunks * 4));
    new Int8Array(buffer, this.vectorsAt + slot * this.width, this.dimensions).set(vector);
  }

  /**
   * The `k` slots nearest the query (in the stored vectors' int8 units) among the `rescored` nearest by code, best
   * first: live slots only (`alive[slot]` non-zero; every slot when `alive` is absent). Ties at the cut-off distance
   * and in the dot products are taken in slot order.
   */
  nearest(query: Float32Array, slots: number, alive: Uint8Array | undefined, k: number): number[] {
    const kernels = this.kernels;
    const buffer = kernels.memory.buffer;
    const { queryCode, queryVector, histogram, candidates, dots, distances } = this.layout;
    this.writeCode(query, new Int32Array(buffer, queryCode, this.chunks * 4));
    let largest = 0;
    for (const x of query) largest = Math.max(largest, Math.abs(x));
    const vector = new Int16Array(buffer, queryVector, this.width);
    // Only the direction matters for ranking: the largest component becomes ±QUERY_SCALE.
    for (let d = 0; d < this.dimensions; d++) vector[d] = Math.round((query[d]! / (largest || 1)) * QUERY_SCALE);
    const bits = this.chunks * 128;
    const dead = bits + 1;
    const counts = new Uint32Array(buffer, histogram, bits + 2);
    counts.fill(0);
    if (alive) new Uint8Array(buffer, this.layout.alive, slots).set(alive.subarray(0, slots));
    kernels.hamming(
      this.codesAt,
      slots,
      this.chunks,
      queryCode,
      alive ? this.layout.alive : -1,
      dead,
      distances,
      histogram,
    );
    // The cut-off distance: everything closer, then slots at it until `rescored` (never more than asked for).
    const wanted = Math.min(this.rescored, slots);
    let cutoff = 0;
    let closer = 0;
    for (; cutoff < dead; cutoff++) {
      if (closer + counts[cutoff]! >= wanted) break;
      closer += counts[cutoff]!;
    }
    const chosen = kernels.select(distances, slots, cutoff, cutoff === dead ? 0 : wanted - closer, candidates);
    kernels.dots(this.vectorsAt, this.width, candidates, chosen, queryVector, dots);
    const slotsOut = new Int32Array(buffer, candidates, chosen);
    const scores = new Int32Array(buffer, dots, chosen);
    const top = new TopK(k);
    for (let i = 0; i < chosen; i++) top.offer(slotsOut[i]!, scores[i]!);
    return top.slotsBestFirst();
  }

  /** Room for `slots` codes and vectors: a new instance (twice the room) with the old ones copied, when needed. */
  private reserve(slots: number): void {
    if (slots <= this.capacity) return;
    const capacity = Math.max(1_024, this.capacity * 2, slots);
    const bits = this.chunks * 128;
    let at = 0;
    const take = (bytes: number) => {
      const offset = at;
      at += align16(bytes);
      return offset;
    };
    const layout = {
      queryCode: take(this.chunks * 16),
      queryVector: take(this.width * 2),
      histogram: take((bits + 2) * 4),
      candidates: take(this.rescored * 4),
      dots: take(this.rescored * 4),
      distances: take(capacity * 2),
      alive: take(capacity),
    };
    const codesAt = take(capacity * this.chunks * 16);
    const vectorsAt = take(capacity * this.width);
    const kernels = this.capacity === 0 ? this.kernels : instantiateKernels();
    reserve(kernels, at);
    if (this.capacity > 0) {
      const from = new Uint8Array(this.kernels.memory.buffer);
      const to = new Uint8Array(kernels.memory.buffer);
      to.set(from.subarray(this.codesAt, this.codesAt + this.capacity * this.chunks * 16), codesAt);
      to.set(from.subarray(this.vectorsAt, this.vectorsAt + this.capacity * this.width), vectorsAt);
    }
    this.kernels = kernels;
    this.layout = layout;
    this.codesAt = codesAt;
    this.vectorsAt = vectorsAt;
    this.capacity = capacity;
  }

  /** One bit per dimension: set where the vector is above the mean (padding bits stay 0 in codes and query). */
  private writeCode(vector: ArrayLike<number>, into: Int32Array): void {
    into.fill(0);
    for (let d = 0; d < this.dimensions; d++) if (vector[d]! > this.mean[d]!) into[d >>> 5]! |= 1 << (d & 31);
  }
}
