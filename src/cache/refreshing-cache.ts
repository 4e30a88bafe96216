import { LRUCache } from "lru-cache";

/** What a load returns: the value, and until when it may be used at all (an API key's expiry, a tier's lapse). */
export interface Loaded<V> {
  value: V;
  validUntil?: number;
  /** Overrides the cache's freshness for this value (e.g. short for "unknown key" answers). */
  ttlMs?: number;
}

export interface RefreshingCacheOptions {
  /** Most entries kept; the least recently used go first. */
  max: number;
  /** How long a loaded value is served without asking again. */
  ttlMs: number;
  /**
   * After ttlMs, how long the old value is still served while one refresh runs in the background
   * (stale-while-revalidate). A refresh that fails drops the old value: it is not served through an outage.
   */
  staleMs: number;
  now?: () => number;
}

interface Entry<V> {
  value: V;
  freshUntil: number;
  staleUntil: number;
}

/**
 * A bounded cache for credential lookups (API key → principal, user + provider → sealed key) that cannot stampede
 * the database: however many requests miss at once, one load runs per key (single-flight); an entry past its TTL
 * is served while one background refresh replaces it (stale-while-revalidate).
 */
export class RefreshingCache<V> {
  private readonly entries: LRUCache<string, Entry<V>>;
  private readonly loading = new Map<string, Promise<V>>();
  private readonly now: () => number;
  // Bumped by delete/deleteWhere: a load that started before an invalidation must not write its (older) answer.
  private generation = 0;

  constructor(private readonly options: RefreshingCacheOptions) {
    this.entries = new LRUCache({ max: options.max });
    this.now = options.now ?? Date.now;
  }

  /** The cached value, or what `load` gives (run once however many callers wait for the same key). */
  async get(key: string, load: () => Promise<Loaded<V>>): Promise<V> {
    const entry = this.entries.get(key);
    const now = this.now();
    if (entry && now < entry.freshUntil) return entry.value;
    if (entry && now < entry.staleUntil) {
      this.load(key, load).catch(() => {}); // the next request after a failed refresh waits for its own load
      return entry.value;
    }
    return this.load(key, load);
  }

  delete(key: string): void {
    this.generation++;
    this.entries.delete(key);
    this.loading.delete(key);
  }

  /** Drops every entry whose value matches (e.g. all lookups of one user). */
  deleteWhere(matches: (value: V, key: string) => boolean): void {
    this.generation++;
    for (const [key, entry] of this.entries.entries()) if (matches(entry.value, key)) this.entries.delete(key);
  }

  private load(key: string, load: () => Promise<Loaded<V>>): Promise<V> {
    const running = this.loading.get(key);
    if (running) return running;
    const generation = this.generation;
    const loading: Promise<V> = load()
      .then(({ value, validUntil = Number.POSITIVE_INFINITY, ttlMs = this.options.ttlMs }) => {
        const now = this.now();
        if (generation === this.generation && ttlMs > 0 && validUntil > now) {
          const freshUntil = Math.min(now + ttlMs, validUntil);
          const staleUntil = Math.min(freshUntil + this.options.staleMs, validUntil);
          this.entries.set(key, { value, freshUntil, staleUntil });
        }
        return value;
      })
      .catch((error: unknown) => {
        this.entries.delete(key);
        throw error;
      })
      .finally(() => {
        if (this.loading.get(key) === loading) this.loading.delete(key);
      });
    this.loading.set(key, loading);
    return loading;
  }
}
