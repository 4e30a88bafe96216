/**
 * BM25 term id (sparse.ts: a stem's hash) → the word-vector row of the most frequent word with that stem, in an
 * open-addressing table in a shared buffer (the embedded store's thread adopts it as it is). A stored memory keeps
 * its terms, so related-word coverage reads them instead of tokenizing the memory's text again; a stem's most frequent
 * word stands for all its forms ("hiked", "hiking" → "hiking"), which measured the same in bench:memory.
 */
export class TermRows {
  private readonly mask: number;

  /** Slot i: the term id (as int32) at 2i, its row + 1 at 2i + 1 (0: empty); a power of two of slots, half full. */
  constructor(readonly slots: Int32Array) {
    this.mask = slots.length / 2 - 1;
  }

  /** From (term id, row) pairs, each term once. */
  static of(pairs: Uint32Array): TermRows {
    let size = 1;
    while (size < pairs.length) size *= 2;
    const table = new TermRows(new Int32Array(new SharedArrayBuffer(size * 2 * 4)));
    for (let i = 0; i < pairs.length; i += 2) {
      const term = pairs[i]! | 0;
      let slot = spread(term) & table.mask;
      while (table.slots[2 * slot + 1] !== 0) slot = (slot + 1) & table.mask;
      table.slots[2 * slot] = term;
      table.slots[2 * slot + 1] = pairs[i + 1]! + 1;
    }
    return table;
  }

  /** The row standing for a term id (uint32 or int32), or -1 for a term no vocabulary word has. */
  rowOf(term: number): number {
    const key = term | 0;
    for (let slot = spread(key) & this.mask; this.slots[2 * slot + 1] !== 0; slot = (slot + 1) & this.mask) {
      if (this.slots[2 * slot] === key) return this.slots[2 * slot + 1]! - 1;
    }
    return -1;
  }
}

/** Term ids are FNV hashes already; one more multiply mixes their high bits into the slot bits. */
const spread = (key: number) => Math.imul(key ^ (key >>> 16), 0x45d9f3b);
