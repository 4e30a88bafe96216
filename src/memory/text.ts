import { stemmer } from "stemmer";

/**
 * Text handling shared by the sparse (BM25) side and the chunker: lower-cased word tokens, English stop words
 * dropped, Porter-stemmed (the `stemmer` package) so "hiking" finds "hiked".
 */

const STOP_WORDS = new Set(
  (
    "a about above after again against all am an and any are as at be because been before being below between both " +
    "but by can could did do does doing down during each few for from further had has have having he her here hers " +
    "herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on " +
    "once only or other our ours ourselves out over own same she should so some such than that the their theirs them " +
    "themselves then there these they this those through to too under until up very was we were what when where " +
    "which while who whom why will with would you your yours yourself yourselves also yeah oh ok okay really just " +
    "im ive id youre thats dont its"
  ).split(" "),
);

const WORD = /[\p{L}\p{N}]+(?:['’][\p{L}]+)?/gu;

const APOSTROPHES = /['’]/g;

/** Words as they appear (lower-cased, apostrophes folded), stop words included: for the dense embedder. */
export function words(text: string): string[] {
  const found = text.toLowerCase().match(WORD) ?? [];
  for (let i = 0; i < found.length; i++) {
    const word = found[i]!;
    // Most words have no apostrophe: a search is cheaper than a replace (recall tokenizes 200 candidates).
    if (word.includes("'") || word.includes("’")) found[i] = word.replace(APOSTROPHES, "");
  }
  return found;
}

/** Whether a (lower-cased) word is one of the stop words `terms` drops. */
export const isStopWord = (word: string) => STOP_WORDS.has(word);

/** Index terms for BM25: stop words dropped, stemmed. */
export function terms(text: string): string[] {
  const out: string[] = [];
  for (const word of words(text)) {
    if (STOP_WORDS.has(word) || word.length > 40) continue;
    out.push(/^\d+$/.test(word) ? word : stemmer(word));
  }
  return out;
}

/** At most `max` UTF-16 units of `text` from its start (or its end), never splitting a surrogate pair. */
export function clip(text: string, max: number, from: "start" | "end" = "start"): string {
  if (text.length <= max) return text;
  if (from === "start") {
    const cut = isHighSurrogate(text.charCodeAt(max - 1)) ? max - 1 : max;
    return text.slice(0, cut);
  }
  const cut = text.length - max;
  return text.slice(isHighSurrogate(text.charCodeAt(cut - 1)) ? cut + 1 : cut);
}

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;

/** A rough token count (≈ 4 characters per token), the same rule the rate limiter's estimate uses. */
export function approximateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

/**
 * Splits a long message into chunks of at most `maxTokens` (approximate), on paragraph bounds first, then
 * sentence bounds, then words; short messages stay whole.
 */
export function chunkText(text: string, maxTokens: number): string[] {
  const clean = text.replace(/\r\n/g, "\n").trim();
  if (!clean) return [];
  if (approximateTokens(clean) <= maxTokens) return [clean];
  const pieces = clean
    .split(/\n\s*\n/)
    .flatMap((paragraph) => (approximateTokens(paragraph) <= maxTokens ? [paragraph] : sentences(paragraph)))
    .flatMap((piece) => (approximateTokens(piece) <= maxTokens ? [piece] : byWords(piece, maxTokens)));
  return pack(pieces.map((p) => p.trim()).filter(Boolean), "\n", maxTokens);
}

/** Joins consecutive pieces with `separator` into as few chunks as fit `maxTokens` each, keeping their order. */
function pack(pieces: string[], separator: string, maxTokens: number): string[] {
  const chunks: string[] = [];
  let current = "";
  for (const piece of pieces) {
    const joined = current ? `${current}${separator}${piece}` : piece;
    if (current && approximateTokens(joined) > maxTokens) {
      chunks.push(current);
      current = piece;
    } else {
      current = joined;
    }
  }
  if (current) chunks.push(current);
  return chunks;
}

function sentences(text: string): string[] {
  return text.match(/[^.!?…]+(?:[.!?…]+["')\]]*\s*|$)/g) ?? [text];
}

function byWords(text: string, maxTokens: number): string[] {
  // A single "word" longer than the cap (a base64 blob, a URL) is cut by characters.
  return pack(text.split(/\s+/), " ", maxTokens).flatMap((piece) =>
    approximateTokens(piece) <= maxTokens ? [piece] : (piece.match(new RegExp(`.{1,${maxTokens * 4}}`, "gs")) ?? []),
  );
}
