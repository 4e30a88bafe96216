/** Set bits of a 32-bit value (SWAR: a few integer operations, no table, no branch). */
function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/**
 * Binary quantization for the embedded store's large users, as Qdrant's binary quantization with rescoring does:
 * each vector keeps one bit per dimension (the sign after subtracting the user's mean vector, so bits split
 * evenly), the query's bits are compared by Hamming distance (four 32-bit popcounts per 100-dimension vector
 * instead of a dot product), and the closest few thousand are rescored exactly by the caller. Vectors and queries
 * must be in the same units (the engine's are int8, see QUANTIZATION_SCALE).
 */
export class SignCodes {
  private readonly words: number;
  private codes: Uint32Array;
  private readonly mean: Float32Array;
  /** Live vectors when the mean was last taken; codes are rebuilt when the index has doubled since. */
  builtAt = 0;

  constructor(private readonly dimensions: number) {
    this.words = Math.ceil(dimensions / 32);
    this.codes = new Uint32Array(this.words * 1024);
    this.mean = new Float32Array(dimensions);
  }

  /** Takes the mean of the live vectors and encodes every slot. */
  rebuild(vectors: Float32Array | Int8Array, slots: number, isLive: (slot: number) => boolean, live: number): void {
    const dims = this.dimensions;
    const sum = new Float64Array(dims);
    for (let slot = 0; slot < slots; slot++) {
      if (!isLive(slot)) continue;
      for (let d = 0; d < dims; d++) sum[d]! += vectors[slot * dims + d]!;
    }
    for (let d = 0; d < dims; d++) this.mean[d] = sum[d]! / Math.max(1, live);
    for (let slot = 0; slot < slots; slot++) this.encode(slot, vectors.subarray(slot * dims, (slot + 1) * dims));
    this.builtAt = live;
  }

  encode(slot: number, vector: Float32Array | Int8Array): void {
    if ((slot + 1) * this.words > this.codes.length) {
      const grown = new Uint32Array(Math.max(this.codes.length * 2, (slot + 1) * this.words));
      grown.set(this.codes);
      this.codes = grown;
    }
    this.write(vector, this.codes, slot * this.words);
  }

  /**
   * The `wanted` slots (fewer if fewer pass `isAllowed`; every slot when it is absent) whose codes are nearest the
   * query's; ties at the cut-off distance are taken in slot order.
   */
  nearest(
    query: Float32Array,
    slots: number,
    isAllowed: ((slot: number) => boolean) | undefined,
    wanted: number,
  ): number[] {
    const words = this.words;
    const q = new Uint32Array(words);
    this.write(query, q, 0);
    // 16 bits: a Hamming distance reaches the dimension count (1,536 for OpenAI's small embedding model).
    const distance = new Uint16Array(slots).fill(0xffff);
    const histogram = new Uint32Array(words * 32 + 1);
    const codes = this.codes;
    for (let slot = 0; slot < slots; slot++) {
      if (isAllowed && !isAllowed(slot)) continue;
      let d = 0;
      const base = slot * words;
      for (let w = 0; w < words; w++) d += popcount32(codes[base + w]! ^ q[w]!);
      distance[slot] = d;
      histogram[d]!++;
    }
    let cutoff = 0;
    let closer = 0;
    for (; cutoff < histogram.length; cutoff++) {
      if (closer + histogram[cutoff]! >= wanted) break;
      closer += histogram[cutoff]!;
    }
    // Everything closer than the cut-off distance, then slots at it until `wanted`: never more than asked for.
    const out: number[] = [];
    let atCutoff = wanted - closer;
    for (let slot = 0; slot < slots; slot++) {
      const d = distance[slot]!;
      if (d < cutoff || (d === cutoff && atCutoff-- > 0)) out.push(slot);
    }
    return out;
  }

  private write(vector: Float32Array | Int8Array, into: Uint32Array, offset: number): void {
    for (let w = 0; w < this.words; w++) {
      let bits = 0;
      for (let b = 0; b < 32; b++) {
        const d = w * 32 + b;
        if (d < this.dimensions && vector[d]! > this.mean[d]!) bits |= 1 << b;
      }
      into[offset + w] = bits >>> 0;
    }
  }
}
