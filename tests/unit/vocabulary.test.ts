import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Vocabulary } from "../../src/memory/embedders/vocabulary";
import { removeOtherCaches, wordVectors } from "../../src/memory/embedders/word-vectors";
import { words } from "../../src/memory/text";

/** What forEachWord reports for a text: each word's row, and the word itself outside the list. */
function scanned(vocabulary: Vocabulary, text: string): Array<[number, string | undefined]> {
  const out: Array<[number, string | undefined]> = [];
  vocabulary.forEachWord(text, (row, unknown) => out.push([row, unknown]));
  return out;
}

/** The same, the slow way: words() and a Map from each word to its row (the last row of a repeated word). */
function expected(list: readonly string[], text: string): Array<[number, string | undefined]> {
  const rows = new Map(list.map((word, row) => [word, row]));
  return words(text).map((word) => {
    const row = rows.get(word) ?? -1;
    return [row, row < 0 ? word : undefined];
  });
}

describe("Vocabulary: words looked up straight from a text's characters", () => {
  const list = ["the", "don't", "dont", "its", "rock", "n", "roll", "2024", "café", "hello", "x1", "dog", "dog"];
  const vocabulary = Vocabulary.of(list);

  test("When texts mix case, digits, straight and curly apostrophes, punctuation and non-ASCII letters, then each word and its row are what words() and a Map give", () => {
    const texts = [
      "Hello, THE dog's owner said: don't!",
      "It’s rock'n'roll in 2024 — rock’n’roll, x1 X1 x1y",
      "dont' 'dont ''dont don''t do'n't it's2 abc'123 end'",
      "Café au lait at the CAFÉ; İstanbul dog",
      "dog\tdog\ndog\u0000dog...dog",
      "",
      "   ",
      "'’",
      "zzzzunknownword DOG Dog",
    ];
    for (const text of texts) expect(scanned(vocabulary, text)).toEqual(expected(list, text));
  });

  test("When a word repeats in the list, then its last row counts, and words outside it are -1", () => {
    expect(vocabulary.rowOf("dog")).toBe(12);
    expect(vocabulary.rowOf("the")).toBe(0);
    expect(vocabulary.rowOf("café")).toBe(8);
    expect(vocabulary.rowOf("cat")).toBe(-1);
    expect(vocabulary.rowOf("")).toBe(-1);
  });

  test("When random texts are scanned with the built-in 100,000 words, then every word and row matches the slow way", () => {
    const builtIn = wordVectors().vocabulary;
    const pieces = ["Hello", "WORLD", "it's", "we’re", "2024", "x", "café", "naïve", "—", "dog", "'", "’", "...", "\n"];
    let seed = 7;
    const random = () => {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) | 0;
      return (seed >>> 8) / 16_777_216;
    };
    for (let t = 0; t < 300; t++) {
      const text = Array.from({ length: 1 + Math.floor(random() * 20) }, () => {
        const piece = pieces[Math.floor(random() * pieces.length)]!;
        return random() < 0.5 ? piece : ` ${piece}`;
      }).join("");
      const rows = scanned(builtIn, text).map(([row, unknown]) => unknown ?? row);
      const slow = words(text).map((word) => (builtIn.rowOf(word) >= 0 ? builtIn.rowOf(word) : word));
      expect(rows).toEqual(slow);
    }
    // The rows are the built-in list's: a common word is found near the top, in both directions.
    expect(builtIn.rowOf("the")).toBeGreaterThanOrEqual(0);
    expect(builtIn.rowOf("the")).toBeLessThan(10);
  });
});

describe("Word-vector cache files", () => {
  test("When the cache is built under a new name, then caches of earlier names go and files being written stay", () => {
    const dir = mkdtempSync(join(tmpdir(), "word-vector-cache-"));
    const names = [
      "word-vectors-sg100d-100000.bin",
      "word-vectors-sg100d-100000-terms.bin",
      "word-vectors-sg100d-100000-terms.bin.123.partial",
      "unrelated.bin",
    ];
    for (const name of names) writeFileSync(join(dir, name), "x");
    removeOtherCaches(dir, "word-vectors-sg100d-100000-terms.bin");
    expect(readdirSync(dir).sort()).toEqual(names.slice(1).sort());
  });
});
