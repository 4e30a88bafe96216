import { termId } from "../sparse";
import { words } from "../text";

/** A vocabulary's tables, in shared buffers: another thread adopts them as they are. */
export interface VocabularyTables {
  /** Open addressing, a power of two of slots at most half full: slot i is its word's hash at 2i and its row + 1 at
   * 2i + 1 (0: empty), so a probe reads one cache line. */
  slots: Int32Array;
  /** Row → where its word's UTF-16 code units start in `units` (and end: the next row's start). */
  starts: Int32Array;
  units: Uint16Array;
}

/**
 * A fixed word list (the word vectors' 100,000 words) looked up straight from a text's characters: for a text of
 * ASCII letters, digits and apostrophes, each word is hashed and found as it is scanned, with no string made for it.
 * Splitting 200 recall candidates into words and looking each up in a Map was two thirds of related-word matching
 * (~800 ns a word); this is ~10× less. Texts with other characters take words() and the same table (the same words,
 * found the slow way). The tables are typed arrays, off the JavaScript heap (a Map of the words held ~8 MB of it),
 * in shared buffers, so the embedded store's thread uses the same ones.
 */
export class Vocabulary {
  private readonly slots: Int32Array;
  private readonly mask: number;
  private readonly starts: Int32Array;
  private readonly units: Uint16Array;

  constructor(readonly tables: VocabularyTables) {
    ({ slots: this.slots, starts: this.starts, units: this.units } = tables);
    this.mask = this.slots.length / 2 - 1;
  }

  /** Row i is word i; of repeated words the last row counts (as a Map built from the list would). */
  static of(list: readonly string[]): Vocabulary {
    let size = 1;
    while (size < list.length * 2) size *= 2;
    let total = 0;
    for (const word of list) total += word.length;
    const shared = <T>(View: { new (buffer: SharedArrayBuffer): T; BYTES_PER_ELEMENT: number }, length: number) =>
      new View(new SharedArrayBuffer(length * View.BYTES_PER_ELEMENT));
    const vocabulary = new Vocabulary({
      slots: shared(Int32Array, size * 2),
      starts: shared(Int32Array, list.length + 1),
      units: shared(Uint16Array, total),
    });
    const { slots, starts, units } = vocabulary;
    let at = 0;
    list.forEach((word, row) => {
      starts[row] = at;
      for (let k = 0; k < word.length; k++) units[at++] = word.charCodeAt(k);
      const hash = hashOf(word);
      let slot = hash & vocabulary.mask;
      while (slots[2 * slot + 1] !== 0 && !vocabulary.isRow(slots[2 * slot + 1]! - 1, word)) {
        slot = (slot + 1) & vocabulary.mask;
      }
      slots[2 * slot] = hash;
      slots[2 * slot + 1] = row + 1;
    });
    starts[list.length] = at;
    return vocabulary;
  }

  /** A (lower-cased, as words() gives it) word's row, or -1 outside the list. */
  rowOf(word: string): number {
    const hash = hashOf(word);
    for (let slot = hash & this.mask; this.slots[2 * slot + 1] !== 0; slot = (slot + 1) & this.mask) {
      const row = this.slots[2 * slot + 1]! - 1;
      if (this.slots[2 * slot] === hash && this.isRow(row, word)) return row;
    }
    return -1;
  }

  /**
   * Each word of `text`, in order and exactly as words() splits it: `visit(row)` with its row, or -1 and the word itself
   * when it is outside the list (names, typos: few, so only they become strings).
   */
  forEachWord(text: string, visit: (row: number, unknown: string | undefined) => void): void {
    if (NOT_SCANNABLE.test(text)) {
      for (const word of words(text)) {
        const row = this.rowOf(word);
        visit(row, row < 0 ? word : undefined);
      }
      return;
    }
    const n = text.length;
    let i = 0;
    while (i < n) {
      let code = text.charCodeAt(i);
      if (!isAlphanumeric(code)) {
        i++;
        continue;
      }
      // words()'s pattern on ASCII: [a-z0-9]+ then at most one apostrophe and the letters after it, which it drops.
      const start = i;
      let hash = FNV_OFFSET;
      let length = 0;
      do {
        hash = Math.imul(hash ^ (code | (32 * +isUpper(code))), FNV_PRIME);
        length++;
        code = ++i < n ? text.charCodeAt(i) : 0;
      } while (isAlphanumeric(code));
      if ((code === 0x27 || code === 0x2019) && i + 1 < n && isLetter(text.charCodeAt(i + 1))) {
        code = text.charCodeAt(++i);
        do {
          hash = Math.imul(hash ^ (code | (32 * +isUpper(code))), FNV_PRIME);
          length++;
          code = ++i < n ? text.charCodeAt(i) : 0;
        } while (isLetter(code));
      }
      const row = this.scannedRow(hash, length, text, start, i);
      visit(row, row < 0 ? text.slice(start, i).toLowerCase().replace(APOSTROPHES, "") : undefined);
    }
  }

  /** The row of the word scanned from text[start, end) (its letters lower-cased, an apostrophe skipped), or -1. */
  private scannedRow(hash: number, length: number, text: string, start: number, end: number): number {
    for (let slot = hash & this.mask; this.slots[2 * slot + 1] !== 0; slot = (slot + 1) & this.mask) {
      const row = this.slots[2 * slot + 1]! - 1;
      if (this.slots[2 * slot] !== hash || this.starts[row + 1]! - this.starts[row]! !== length) continue;
      let at = this.starts[row]!;
      let same = true;
      for (let k = start; k < end && same; k++) {
        const code = text.charCodeAt(k);
        if (code === 0x27 || code === 0x2019) continue;
        same = this.units[at++] === (code | (32 * +isUpper(code)));
      }
      if (same) return row;
    }
    return -1;
  }

  private isRow(row: number, word: string): boolean {
    const start = this.starts[row]!;
    if (this.starts[row + 1]! - start !== word.length) return false;
    for (let k = 0; k < word.length; k++) if (this.units[start + k] !== word.charCodeAt(k)) return false;
    return true;
  }
}

/** What the scanner leaves to words(): any UTF-16 unit past ASCII except the typographic apostrophe (whose lower case
 * is itself). */
const NOT_SCANNABLE = /[\u0080-\u2018\u201a-\uffff]/;
const APOSTROPHES = /['’]/g;

/** termId's FNV-1a (sparse.ts), which the scanner computes as it reads a word. */
const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 0x01000193;
const hashOf = (word: string) => termId(word) | 0;

const isUpper = (code: number) => code >= 0x41 && code <= 0x5a;
const isLetter = (code: number) => (code | 32) >= 0x61 && (code | 32) <= 0x7a;
const isAlphanumeric = (code: number) => isLetter(code) || (code >= 0x30 && code <= 0x39);
