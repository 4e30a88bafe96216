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
  private codes: Int32Array;
  private readonly mean: Float32Array;
  private distance = new Uint16Array(0);
  /** Live vectors when the mean was last taken; codes are rebuilt when the index has doubled since. */
  builtAt = 0;

  constructor(private readonly dimensions: number) {
    this.words = Math.ceil(dimensions / 32);
    this.codes = new Int32Array(this.words * 1024);
    this.mean = new Float32Array(dimensions);
  }

  /** Takes the mean of the live vectors and encodes every slot. */
  rebuild(vectors: Float32Array | Int8Array, slots: number, alive: Uint8Array, live: number): void {
    const dims = this.dimensions;
    const sum = new Float64Array(dims);
    for (let slot = 0; slot < slots; slot++) {
      if (alive[slot] === 0) continue;
      for (let d = 0; d < dims; d++) sum[d]! += vectors[slot * dims + d]!;
    }
    for (let d = 0; d < dims; d++) this.mean[d] = sum[d]! / Math.max(1, live);
    for (let slot = 0; slot < slots; slot++) this.encode(slot, vectors.subarray(slot * dims, (slot + 1) * dims));
    this.builtAt = live;
  }

  encode(slot: number, vector: Float32Array | Int8Array): void {
    if ((slot + 1) * this.words > this.codes.length) {
      const grown = new Int32Array(Math.max(this.codes.length * 2, (slot + 1) * this.words));
      grown.set(this.codes);
      this.codes = grown;
    }
    this.write(vector, this.codes, slot * this.words);
  }

  /**
   * The `wanted` live slots (`alive[slot]` non-zero; every slot when `alive` is absent) whose codes are nearest the
   * query's; ties at the cut-off distance are taken in slot order.
   */
  nearest(query: Float32Array, slots: number, alive: Uint8Array | undefined, wanted: number): number[] {
    const words = this.words;
    const q = new Int32Array(words);
    this.write(query, q, 0);
    // 16 bits: a Hamming distance reaches the dimension count (1,536 for OpenAI's small embedding model). Reused
    // across searches: a fresh 200 kB array per search at 100k memories was a measurable share of its time.
    if (this.distance.length < slots) this.distance = new Uint16Array(slots * 2);
    const distance = this.distance;
    const histogram = new Uint32Array(words * 32 + 2);
    const codes = this.codes;
    const dead = words * 32 + 1;
    if (words === 4) {
      // The built-in embedder's 100 dimensions: four words, unrolled (about twice as fast as the general loop).
      const [q0, q1, q2, q3] = q as unknown as [number, number, number, number];
      for (let slot = 0, base = 0; slot < slots; slot++, base += 4) {
        const d =
          alive !== undefined && alive[slot] === 0
            ? dead
            : popcount32(codes[base]! ^ q0) +
              popcount32(codes[base + 1]! ^ q1) +
              popcount32(codes[base + 2]! ^ q2) +
              popcount32(codes[base + 3]! ^ q3);
        distance[slot] = d;
        histogram[d]!++;
      }
    } else {
      for (let slot = 0; slot < slots; slot++) {
        let d = 0;
        if (alive !== undefined && alive[slot] === 0) d = dead;
        else for (let w = 0, base = slot * words; w < words; w++) d += popcount32(codes[base + w]! ^ q[w]!);
        distance[slot] = d;
        histogram[d]!++;
      }
    }
    let cutoff = 0;
    let closer = 0;
    for (; cutoff < dead; cutoff++) {
      if (closer + histogram[cutoff]! >= wanted) break;
      closer += histogram[cutoff]!;
    }
    // Everything closer than the cut-off distance, then slots at it until `wanted`: never more than asked for.
    const out: number[] = [];
    let atCutoff = cutoff === dead ? 0 : wanted - closer;
    for (let slot = 0; slot < slots; slot++) {
      const d = distance[slot]!;
      if (d < cutoff || (d === cutoff && atCutoff-- > 0)) out.push(slot);
    }
    return out;
  }

  private write(vector: Float32Array | Int8Array, into: Int32Array, offset: number): void {
    for (let w = 0; w < this.words; w++) {
      let bits = 0;
      for (let b = 0; b < 32; b++) {
        const d = w * 32 + b;
        if (d < this.dimensions && vector[d]! > this.mean[d]!) bits |= 1 << b;
      }
      into[offset + w] = bits;
    }
  }
}
