import { hash } from "node:crypto";
import { LRUCache } from "lru-cache";
import { InvalidRequestError } from "../errors";
import { isStopWord, terms } from "../memory/text";
import type { ChatCompletion } from "../providers";
import { jsonTextOf } from "../providers/wire";

export type CacheMode = "off" | "exact" | "semantic";

/** A request's cache keys: exact (everything), scope (everything but the last user turn) and that turn's text. */
export interface CacheKeys {
  exact: string;
  scope: string;
  lastUserText: string;
}

/** What a hit hands back: the answer, how it matched, and what the original call cost (the saving). */
export interface CacheHit {
  completion: ChatCompletion;
  match: "exact" | "semantic";
  costUsd: number;
  provider: string;
}

interface Entry {
  completion: ChatCompletion;
  costUsd: number;
  provider: string;
  /** The last user turn's embedding (semantic matching), when it was computed. */
  vector?: Float32Array;
  /** The last user turn's content words (see contentWords). */
  words?: string;
  bytes: number;
}

/** Fields that change neither the answer nor who may see it: left out of the key. */
const IGNORED_FIELDS = new Set(["stream", "stream_options", "user", "metadata", "store", "safety_identifier"]);

/**
 * The per-user response cache (opt-in: `x-perpetual-cache: exact | semantic`, or RESPONSE_CACHE). Never across
 * users: every key starts with the user id. Exact: the request's normalised hash (model, messages, tools, sampling
 * parameters — every field but transport ones). Semantic: the same hash of everything but the last user turn
 * ("scope"), then the cached turn under that scope whose embedding is most similar, if it reaches the threshold.
 * In this process's memory (bounded by bytes, entries expire after the TTL); a user's entries are dropped on
 * erasure or memory deletion on every replica (through UserChanges).
 */
export class ResponseCache {
  private readonly entries: LRUCache<string, Entry>;
  /** user + scope → the keys of that scope's entries (newest last), for semantic matching. */
  private readonly scopes: LRUCache<string, string[]>;
  /** Bumped when a user's cache is cleared: older keys are never read again and age out. */
  private readonly generations = new Map<string, number>();

  constructor(
    private readonly settings: {
      ttlMs: number;
      maxBytes: number;
      similarity: number;
      /**
       * Semantic matching by content words instead of embeddings: for embedders that see topics rather than
       * meaning (the built-in word vectors rate "capital of Germany" closer to "capital of France", 0.96, than the
       * rephrasing "…France, please?", 0.93).
       */
      sameWords: boolean;
    },
    now?: () => number,
  ) {
    // An injected clock (tests) is read on every call: lru-cache otherwise reuses a reading for 1 ms of real time.
    const clock = now ? { perf: { now }, ttlResolution: 0 } : {};
    this.entries = new LRUCache<string, Entry>({
      maxSize: settings.maxBytes,
      sizeCalculation: (entry) => entry.bytes,
      ttl: settings.ttlMs,
      ...clock,
    });
    this.scopes = new LRUCache<string, string[]>({ max: 100_000, ttl: settings.ttlMs, ...clock });
  }

  /** The request's keys: exact (everything) and scope (everything but the last user turn's text). */
  keysOf(userId: string, body: Record<string, unknown>): CacheKeys {
    const messages = (body.messages as Array<Record<string, unknown>>) ?? [];
    const last = messages.findLastIndex((m) => m.role === "user");
    const lastUserText =
      last >= 0 && typeof messages[last]!.content === "string" ? (messages[last]!.content as string) : "";
    const prefix = `${userId}:${this.generations.get(userId) ?? 0}:`;
    const exact = prefix + digest(normalised(body));
    const withoutLast = { ...body, messages: messages.map((m, i) => (i === last ? { ...m, content: "" } : m)) };
    return { exact, scope: prefix + digest(normalised(withoutLast)), lastUserText };
  }

  exact(key: string): CacheHit | undefined {
    const entry = this.entries.get(key);
    return entry && hitOf(entry, "exact");
  }

  /** Whether semantic matching needs the last user turn's embedding (see `sameWords`). */
  get usesVectors(): boolean {
    return !this.settings.sameWords;
  }

  /**
   * The cached turn under the same scope that matches this last user turn: the same content words (stemmed, stop
   * and courtesy words aside, any order) with `sameWords`, else the most similar embedding at or above the
   * threshold.
   */
  similar(keys: CacheKeys, vector?: Float32Array): CacheHit | undefined {
    let best: Entry | undefined;
    let bestScore = this.settings.similarity;
    const words = contentWords(keys.lastUserText);
    for (const key of this.scopes.get(keys.scope) ?? []) {
      const entry = this.entries.get(key);
      if (!entry) continue;
      if (this.settings.sameWords) {
        if (words && entry.words === words) return hitOf(entry, "semantic");
        continue;
      }
      if (!entry.vector || !vector) continue;
      const score = cosine(vector, entry.vector);
      if (score >= bestScore) {
        best = entry;
        bestScore = score;
      }
    }
    return best && hitOf(best, "semantic");
  }

  put(
    keys: CacheKeys,
    value: { completion: ChatCompletion; costUsd: number; provider: string; vector?: Float32Array },
  ): void {
    // The parsed answer (~2 bytes a character) and, for an answer kept as the provider wrote it, that text as well.
    const bytes = jsonTextOf(value.completion).length * 3 + (value.vector?.byteLength ?? 0) + 200;
    // An answer larger than a sixteenth of the cache would evict too much to be worth keeping.
    if (bytes > this.settings.maxBytes / 16) return;
    this.entries.set(keys.exact, { ...value, bytes, words: contentWords(keys.lastUserText) });
    if (keys.lastUserText) {
      const list = (this.scopes.get(keys.scope) ?? []).filter((k) => k !== keys.exact && this.entries.has(k));
      list.push(keys.exact);
      this.scopes.set(keys.scope, list.slice(-SEMANTIC_CANDIDATES));
    }
  }

  /** Forgets everything cached for the user (erasure, memory deletion). */
  clearUser(userId: string): void {
    this.generations.set(userId, (this.generations.get(userId) ?? 0) + 1);
  }
}

const hitOf = (entry: Entry, match: CacheHit["match"]): CacheHit => ({
  completion: entry.completion,
  match,
  costUsd: entry.costUsd,
  provider: entry.provider,
});

/** Words that carry no content for a cache match: courtesy, on top of the stop words `terms` drops. */
const COURTESY = new Set(["pleas", "please", "thank", "thanks", "kindli", "hi", "hello", "hey"]);

/** A turn's content words, stemmed, stop words and courtesy aside, in a canonical order. */
function contentWords(text: string): string {
  // Contractions stem to stop words ("what's" → "what"): dropped here too.
  return [...new Set(terms(text).filter((t) => !COURTESY.has(t) && !isStopWord(t)))].sort().join(" ");
}

/** Cached turns compared per scope at most: bounds a semantic lookup's work. */
const SEMANTIC_CANDIDATES = 50;

const digest = (text: string) => hash("sha256", text, "base64url");

/** Canonical JSON (keys sorted, transport fields dropped, text trimmed): equal requests hash equally. */
function normalised(body: Record<string, unknown>): string {
  const canonical = (value: unknown): unknown => {
    if (typeof value === "string") return value.trim().replace(/\s+/g, " ");
    if (Array.isArray(value)) return value.map(canonical);
    if (value && typeof value === "object") {
      return Object.fromEntries(
        Object.keys(value)
          .sort()
          .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
      );
    }
    return value;
  };
  const kept = Object.fromEntries(Object.entries(body).filter(([k]) => !IGNORED_FIELDS.has(k)));
  return JSON.stringify(canonical(kept));
}

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

/**
 * Whether a request may be answered from the cache: deterministic sampling (temperature 0, or unset top_p with
 * temperature 0) and one choice, unless the caller forces it (`x-perpetual-cache-force: true`).
 */
export function cacheable(body: Record<string, unknown>, forced: boolean): boolean {
  if ((body.n ?? 1) !== 1) return false;
  return forced || body.temperature === 0;
}

export interface CacheControls {
  mode: CacheMode;
  /** Cache even a request whose sampling is not deterministic. */
  force: boolean;
}

const CACHE_HEADER = "x-perpetual-cache";
const FORCE_HEADER = "x-perpetual-cache-force";

/** This request's cache controls: the headers over the configured default; a bad value is a 400 naming it. */
export function cacheControls(header: (name: string) => string | undefined, defaultMode: CacheMode): CacheControls {
  const mode = header(CACHE_HEADER)?.trim().toLowerCase() || defaultMode;
  const force = header(FORCE_HEADER)?.trim().toLowerCase() || "false";
  if (mode !== "off" && mode !== "exact" && mode !== "semantic") {
    throw new InvalidRequestError(`${CACHE_HEADER} must be off, exact or semantic.`, {
      code: "invalid_header",
      param: CACHE_HEADER,
    });
  }
  if (force !== "true" && force !== "false") {
    throw new InvalidRequestError(`${FORCE_HEADER} must be true or false.`, {
      code: "invalid_header",
      param: FORCE_HEADER,
    });
  }
  return { mode, force: force === "true" };
}
