import {
  closeSync,
  createReadStream,
  existsSync,
  fdatasync,
  fdatasyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  statSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { writeAll } from "../../files";
import type { SparseVector } from "../sparse";
import {
  coverageIdf,
  decodeCursor,
  fuseRankings,
  idf,
  isAfterCursor,
  type Memory,
  type MemoryDeletion,
  type MemoryPage,
  type MemorySearch,
  type NewMemory,
  PREFETCH_LIMIT,
  pageOf,
  queryCoverage,
  relevantOnly,
  type ScoredMemory,
} from "../store";
import { SignCodes } from "./sign-codes";

/**
 * The embedded store's engine, run in its own worker thread (see ../embedded-store.ts) so that nothing that grows
 * with a user's memory count runs on the server's event loop. Everything is in memory, per user (a search only
 * ever touches that user's rows), made durable by an append-only log under DATA_DIR/memory that is fsynced before
 * a write is acknowledged and replayed at start (and compacted when mostly dead). Dense search is an exact scan of
 * the user's unit vectors (binary codes first past EXACT_SCAN_LIMIT); the sparse side is an inverted index scored
 * with BM25's IDF over the user's own memories.
 */
export class EmbeddedEngine {
  private readonly users = new Map<string, UserIndex>();
  private readonly directory: string;
  private readonly path: string;
  private fd: number | undefined;
  private logLines = 0;
  /** Log lines waiting for the next group commit, and the writes waiting for it to be on disk. */
  private queued: string[] = [];
  private waiting: { resolve(): void; reject(error: Error): void }[] = [];
  private flushing: Promise<void> | undefined;

  constructor(
    dataDir: string,
    readonly collection: string,
    private readonly dimensions: number,
  ) {
    this.directory = join(dataDir, "memory");
    mkdirSync(this.directory, { recursive: true, mode: 0o700 });
    this.path = join(this.directory, `${collection}.ndjson`);
  }

  async open(): Promise<void> {
    if (this.fd !== undefined) return;
    if (existsSync(this.path)) await this.replay();
    const live = [...this.users.values()].reduce((n, u) => n + u.live, 0);
    if (this.logLines > 1000 && this.logLines > 2 * live) this.compact();
    this.fd = openSync(this.path, "a", 0o600);
    // A torn last line (a crash mid-append: never acknowledged) must not swallow the first line appended now.
    if (!endsWithNewline(this.path)) writeSync(this.fd, "\n");
  }

  siblings(prefix: string): string[] {
    return readdirSync(this.directory)
      .filter((file) => file.endsWith(".ndjson"))
      .map((file) => file.slice(0, -".ndjson".length))
      .filter((name) => name.startsWith(prefix) && name !== this.collection);
  }

  /** Searchable at once; resolves once durable (fsynced), which is when the outbox may forget the exchange. */
  async upsert(userId: string, memories: NewMemory[]): Promise<void> {
    if (memories.length === 0) return;
    const durable = this.append(memories.map((m) => ({ op: "put", u: userId, ...serialize(m) })));
    const index = this.userIndex(userId);
    for (const m of memories) index.put(m);
    await durable;
  }

  search(userId: string, query: MemorySearch): ScoredMemory[] {
    return this.users.get(userId)?.search(query) ?? [];
  }

  neighbours(userId: string, of: readonly Memory[]): Memory[][] {
    const user = this.users.get(userId);
    return of.map((m) => user?.neighbours(m.id) ?? []);
  }

  list(userId: string, options: { conversationId?: string; limit: number; after?: string }): MemoryPage {
    return this.users.get(userId)?.list(options) ?? { data: [] };
  }

  async delete(userId: string, which: MemoryDeletion): Promise<number> {
    const user = this.users.get(userId);
    if (!user) return 0;
    const ids = user.matching(which);
    if (ids.length === 0) return 0;
    const durable = this.append([{ op: "del", u: userId, ids }]);
    for (const id of ids) user.remove(id);
    if (user.live === 0) this.users.delete(userId);
    await durable;
    return ids.length;
  }

  async close(): Promise<void> {
    await this.flushing;
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private userIndex(userId: string): UserIndex {
    const existing = this.users.get(userId);
    if (existing) return existing;
    const created = new UserIndex(this.dimensions);
    this.users.set(userId, created);
    return created;
  }

  /**
   * Group commit: records are queued and written, with one fdatasync, by a flush that runs off this thread (the
   * libuv pool), so searches are answered while a write waits for the disk. Resolves once the records are on disk.
   */
  private append(records: object[]): Promise<void> {
    if (this.fd === undefined) return Promise.reject(new Error("the embedded memory store is not open"));
    for (const record of records) this.queued.push(JSON.stringify(record));
    this.logLines += records.length;
    const durable = new Promise<void>((resolve, reject) => this.waiting.push({ resolve, reject }));
    this.flushing ??= this.flush();
    return durable;
  }

  private async flush(): Promise<void> {
    while (this.queued.length > 0) {
      const lines = this.queued;
      const waiting = this.waiting;
      this.queued = [];
      this.waiting = [];
      try {
        await writeAll(this.fd!, Buffer.from(`${lines.join("\n")}\n`));
        await fdatasyncAsync(this.fd!);
        for (const w of waiting) w.resolve();
      } catch (error) {
        for (const w of [...waiting, ...this.waiting]) w.reject(error as Error);
        // The log may now end in a torn line: stop this thread (the store starts a new one, which replays).
        process.exit(1);
      }
    }
    this.flushing = undefined;
  }

  private async replay(): Promise<void> {
    const lines = createInterface({ input: createReadStream(this.path, "utf8"), crlfDelay: Number.POSITIVE_INFINITY });
    for await (const line of lines) {
      if (!line) continue;
      let record: LogRecord;
      try {
        record = JSON.parse(line) as LogRecord;
      } catch {
        continue; // a torn last line after a crash: its write never resolved, so the outbox still holds it
      }
      this.logLines++;
      if (record.op === "put") {
        this.userIndex(record.u).put(deserialize(record));
      } else {
        const user = this.users.get(record.u);
        for (const id of record.ids) user?.remove(id);
      }
    }
  }

  private compact(): void {
    const partial = `${this.path}.compacting`;
    const fd = openSync(partial, "w", 0o600);
    let lines = 0;
    for (const [userId, user] of this.users) {
      for (const m of user.all()) {
        writeSync(fd, `${JSON.stringify({ op: "put", u: userId, ...serialize(m) })}\n`);
        lines++;
      }
    }
    fdatasyncSync(fd);
    closeSync(fd);
    renameSync(partial, this.path);
    this.logLines = lines;
  }
}

const fdatasyncAsync = promisify(fdatasync);

function endsWithNewline(path: string): boolean {
  const size = statSync(path).size;
  if (size === 0) return true;
  const fd = openSync(path, "r");
  try {
    const last = Buffer.alloc(1);
    readSync(fd, last, 0, 1, size - 1);
    return last[0] === 0x0a;
  } finally {
    closeSync(fd);
  }
}

type LogRecord = ({ op: "put"; u: string } & ReturnType<typeof serialize>) | { op: "del"; u: string; ids: string[] };

function serialize(m: NewMemory) {
  return {
    m: plain(m),
    d: Buffer.from(m.dense.buffer, m.dense.byteOffset, m.dense.byteLength).toString("base64"),
    s: [m.sparse.indices, m.sparse.values] as [number[], number[]],
  };
}

function deserialize(record: ReturnType<typeof serialize>): NewMemory {
  const bytes = Buffer.from(record.d, "base64");
  const dense = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return { ...record.m, dense, sparse: { indices: record.s[0], values: record.s[1] } };
}

/** The conversation key of memories written without a conversation id. */
const NO_CONVERSATION = "\u0000";

/** Up to this many memories per user, dense search is an exact scan (about 2 ms at the limit on this machine's
 * cores; past it the binary-code pass is cheaper: ~4 ms at 100,000 against ~8 ms for an exact scan of 20,000). */
const EXACT_SCAN_LIMIT = 5_000;
/** Beyond it, this many nearest by binary code are rescored exactly (Qdrant's quantization oversampling). */
const RESCORE_CANDIDATES = 2_000;

/**
 * Dense vectors are kept as int8 (unit-vector components × 127, as Qdrant's scalar quantization): a quarter of the
 * memory, and rescoring reads 100 bytes per candidate instead of 400 (it is bound by memory access, not arithmetic).
 * Rank changes are negligible for ranking; a compaction writes the vectors back dequantized.
 */
const QUANTIZATION_SCALE = 127;

/**
 * A memory as the index keeps it: its dense vector lives only in the packed, quantized `vectors` array; its BM25
 * terms as int32 ids (see termKey) with float32 weights.
 */
type Kept = Memory & { terms: Int32Array; weights: Float32Array };

/**
 * Term ids inside the engine are int32: the sparse vectors' uint32 ids above 2^30 are heap numbers in V8, and Map
 * lookups keyed by them made the coverage of 200 candidates cost 1.3 ms at 100k memories (small integers are
 * unboxed and hash fast). The log and everything the engine hands out keep the uint32 ids.
 */
const termKey = (term: number) => term | 0;

/** One user's memories: slots in insertion order, dead slots skipped and reclaimed by `rebuild`. */
class UserIndex {
  private memories: (Kept | undefined)[] = [];
  /** 1 for a live slot, 0 for a dead one: scans read this, not the objects in `memories`. */
  private alive = new Uint8Array(1024);
  private vectors: Int8Array;
  private readonly slotById = new Map<string, number>();
  /** term id → slots holding it, with the term's weight there. */
  private postings = new Map<number, { slots: number[]; weights: number[] }>();
  /** term id → live slots holding it (document frequency). */
  private readonly documentFrequency = new Map<number, number>();
  live = 0;
  /** Per-slot BM25 accumulator, reused by every query (zeroed again after each). */
  private scores = new Float64Array(0);
  /** Binary codes for a fast first pass once the user has more memories than an exact scan serves quickly. */
  private codes: SignCodes | undefined;
  /** Each conversation's slots in write order (dead ones skipped when read), and each slot's place in that list. */
  private conversations = new Map<string, number[]>();
  private placeInConversation: number[] = [];

  constructor(private readonly dimensions: number) {
    this.vectors = new Int8Array(dimensions * 16);
  }

  put(memory: NewMemory): void {
    if (this.slotById.has(memory.id)) this.remove(memory.id);
    const slot = this.memories.length;
    if ((slot + 1) * this.dimensions > this.vectors.length) {
      const grown = new Int8Array(this.vectors.length * 2);
      grown.set(this.vectors);
      this.vectors = grown;
    }
    const base = slot * this.dimensions;
    for (let d = 0; d < this.dimensions; d++) {
      this.vectors[base + d] = Math.max(-127, Math.min(127, Math.round((memory.dense[d] ?? 0) * QUANTIZATION_SCALE)));
    }
    const terms = Int32Array.from(memory.sparse.indices, termKey);
    const weights = Float32Array.from(memory.sparse.values);
    this.memories.push({ ...plain(memory), terms, weights });
    if (slot >= this.alive.length) {
      const grown = new Uint8Array(this.alive.length * 2);
      grown.set(this.alive);
      this.alive = grown;
    }
    this.alive[slot] = 1;
    this.slotById.set(memory.id, slot);
    const conversation = this.conversations.get(memory.conversationId ?? NO_CONVERSATION) ?? [];
    this.conversations.set(memory.conversationId ?? NO_CONVERSATION, conversation);
    this.placeInConversation[slot] = conversation.push(slot) - 1;
    this.encode(slot);
    for (let i = 0; i < terms.length; i++) {
      const term = terms[i]!;
      const list = this.postings.get(term) ?? { slots: [], weights: [] };
      this.postings.set(term, list);
      list.slots.push(slot);
      list.weights.push(weights[i]!);
      this.documentFrequency.set(term, (this.documentFrequency.get(term) ?? 0) + 1);
    }
    this.live++;
  }

  /** Keeps the binary codes current: built past EXACT_SCAN_LIMIT, rebuilt (new mean) each time the index doubles. */
  private encode(slot: number): void {
    const live = this.live + 1;
    if (!this.codes && live <= EXACT_SCAN_LIMIT) return;
    this.codes ??= new SignCodes(this.dimensions);
    if (live > 2 * this.codes.builtAt) {
      this.codes.rebuild(this.vectors, this.memories.length, this.alive, live);
    } else {
      this.codes.encode(slot, this.vectors.subarray(slot * this.dimensions, (slot + 1) * this.dimensions));
    }
  }

  remove(id: string): void {
    const slot = this.slotById.get(id);
    if (slot === undefined) return;
    const memory = this.memories[slot]!;
    for (const term of memory.terms) {
      const df = (this.documentFrequency.get(term) ?? 1) - 1;
      if (df > 0) this.documentFrequency.set(term, df);
      else this.documentFrequency.delete(term);
    }
    this.memories[slot] = undefined;
    this.alive[slot] = 0;
    this.slotById.delete(id);
    this.live--;
    if (this.memories.length > 64 && this.live < this.memories.length / 2) this.rebuild();
  }

  /** The live memories with their vectors (copied out of the packed array): for compaction and `rebuild`. */
  all(): NewMemory[] {
    const out: NewMemory[] = [];
    const dims = this.dimensions;
    this.memories.forEach((m, slot) => {
      if (!m) return;
      const dense = Float32Array.from(
        this.vectors.subarray(slot * dims, (slot + 1) * dims),
        (x) => x / QUANTIZATION_SCALE,
      );
      out.push({
        ...plain(m),
        dense,
        sparse: { indices: Array.from(m.terms, (t) => t >>> 0), values: Array.from(m.weights) },
      });
    });
    return out;
  }

  private kept(): Kept[] {
    return this.memories.filter((m): m is Kept => m !== undefined);
  }

  matching(which: MemoryDeletion): string[] {
    if ("ids" in which) return which.ids.filter((id) => this.slotById.has(id));
    return this.kept()
      .filter((m) =>
        "all" in which
          ? true
          : "conversationId" in which
            ? m.conversationId === which.conversationId
            : m.requestId === which.requestId,
      )
      .map((m) => m.id);
  }

  list({ conversationId, limit, after }: { conversationId?: string; limit: number; after?: string }): MemoryPage {
    const cursor = after === undefined ? undefined : decodeCursor(after);
    const following = this.kept()
      .filter((m) => (conversationId === undefined || m.conversationId === conversationId) && isAfterCursor(m, cursor))
      .sort((a, b) =>
        a.createdAt === b.createdAt ? b.id.localeCompare(a.id) : b.createdAt.localeCompare(a.createdAt),
      );
    return pageOf(following.slice(0, limit + 1).map(plain), limit, cursor);
  }

  search(query: MemorySearch): ScoredMemory[] {
    const { conversationId } = query;
    const alive = this.alive;
    const memories = this.memories;
    const allowed =
      conversationId === undefined
        ? (slot: number) => alive[slot] === 1
        : (slot: number) => alive[slot] === 1 && memories[slot]!.conversationId === conversationId;
    const dense =
      conversationId === undefined
        ? this.denseTop(query.dense)
        : this.denseTopOf(query.dense, this.slotsOf(conversationId));
    const fused = fuseRankings(dense, this.sparseTop(query.sparse, allowed));
    // Each query term's weight for queryCoverage, from this user's document frequencies.
    const focus = query.focus ?? query.sparse;
    const weights = new Map(
      focus.indices.map((term, i) => [
        termKey(term),
        coverageIdf(this.live, this.documentFrequency.get(termKey(term)) ?? 0) * focus.values[i]!,
      ]),
    );
    const dims = this.dimensions;
    // Evidence first, the memories' copies only for what is returned.
    const scored = [...fused]
      .sort((a, b) => b[1] - a[1])
      .slice(0, query.limit)
      .map(([slot, score]) => {
        // Recomputed rather than looked up in the dense ranking: 200 dot products cost less than the lookups.
        const cosine = dot(this.vectors, slot * dims, query.dense, dims);
        const evidence = { lexical: queryCoverage(weights, memories[slot]!.terms), dense: cosine / QUANTIZATION_SCALE };
        return { slot, score, evidence };
      });
    return relevantOnly(scored, query.minRelevance).map(({ slot, score, evidence }) => ({
      memory: plain(memories[slot]!),
      score,
      evidence,
    }));
  }

  /** The live slots of one conversation (a conversation-scoped search scans only these). */
  private slotsOf(conversationId: string): number[] {
    return (this.conversations.get(conversationId) ?? []).filter((slot) => this.alive[slot] === 1);
  }

  /** The user's nearest memories by dense vector: an exact scan while small, binary codes + rescoring past that. */
  private denseTop(query: Float32Array): number[] {
    const slots = this.memories.length;
    // No liveness check when no slot is dead (a user who never overwrote or deleted anything).
    const alive = this.live === slots ? undefined : this.alive;
    if (!this.codes) {
      const top = new TopK(PREFETCH_LIMIT);
      const dims = this.dimensions;
      for (let slot = 0; slot < slots; slot++) {
        if (alive === undefined || alive[slot] === 1) top.offer(slot, dot(this.vectors, slot * dims, query, dims));
      }
      return top.slotsBestFirst();
    }
    const scaled = query.map((x) => x * QUANTIZATION_SCALE);
    return this.denseTopOf(query, this.codes.nearest(scaled, slots, alive, RESCORE_CANDIDATES));
  }

  /** The nearest of the given slots, scored exactly. */
  private denseTopOf(query: Float32Array, slots: readonly number[]): number[] {
    const top = new TopK(PREFETCH_LIMIT);
    const dims = this.dimensions;
    for (const slot of slots) top.offer(slot, dot(this.vectors, slot * dims, query, dims));
    return top.slotsBestFirst();
  }

  private sparseTop(query: SparseVector, allowed: (slot: number) => boolean): number[] {
    // Scores accumulate in a typed array indexed by slot (a Map per query was the slowest part at 100k memories).
    if (this.scores.length < this.memories.length) this.scores = new Float64Array(this.memories.length * 2);
    const scores = this.scores;
    const touched: number[] = [];
    for (const [i, term] of query.indices.entries()) {
      const list = this.postings.get(termKey(term));
      const df = this.documentFrequency.get(termKey(term));
      if (!list || !df) continue;
      const weight = idf(this.live, df) * query.values[i]!;
      const { slots, weights } = list;
      for (let j = 0; j < slots.length; j++) {
        const slot = slots[j]!;
        if (scores[slot] === 0) touched.push(slot);
        scores[slot]! += weight * weights[j]!;
      }
    }
    const top = new TopK(PREFETCH_LIMIT);
    for (const slot of touched) {
      if (allowed(slot)) top.offer(slot, scores[slot]!);
      scores[slot] = 0;
    }
    return top.slotsBestFirst();
  }

  /** The live memories written just before and just after this one in its conversation. */
  neighbours(id: string): Memory[] {
    const slot = this.slotById.get(id);
    if (slot === undefined) return [];
    const list = this.conversations.get(this.memories[slot]!.conversationId ?? NO_CONVERSATION)!;
    const place = this.placeInConversation[slot]!;
    const found: Memory[] = [];
    for (const step of [-1, 1]) {
      for (let i = place + step; i >= 0 && i < list.length; i += step) {
        const neighbour = this.memories[list[i]!];
        if (neighbour) {
          found.push(plain(neighbour));
          break;
        }
      }
    }
    return found;
  }

  /** Drops dead slots: vectors and postings are rebuilt from the live memories. */
  private rebuild(): void {
    const live = this.all();
    this.memories = [];
    this.alive = new Uint8Array(1024);
    this.conversations = new Map();
    this.placeInConversation = [];
    this.slotById.clear();
    this.postings = new Map();
    this.documentFrequency.clear();
    this.codes = undefined;
    this.live = 0;
    for (const m of live) this.put(m);
  }
}

/** Four running sums: independent additions the CPU overlaps (about 20% faster than one sum here). */
function dot(vectors: Int8Array, base: number, query: Float32Array, dims: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let d = 0;
  for (; d + 3 < dims; d += 4) {
    s0 += vectors[base + d]! * query[d]!;
    s1 += vectors[base + d + 1]! * query[d + 1]!;
    s2 += vectors[base + d + 2]! * query[d + 2]!;
    s3 += vectors[base + d + 3]! * query[d + 3]!;
  }
  for (; d < dims; d++) s0 += vectors[base + d]! * query[d]!;
  return s0 + s1 + s2 + s3;
}

const plain = (m: Memory): Memory => ({
  id: m.id,
  conversationId: m.conversationId,
  role: m.role,
  text: m.text,
  createdAt: m.createdAt,
  model: m.model,
  requestId: m.requestId,
});

/** The k best (slot, score) pairs seen, kept sorted; cheap while k is small compared with the input. */
class TopK {
  private readonly slots: number[] = [];
  private readonly scores: number[] = [];

  constructor(private readonly k: number) {}

  offer(slot: number, score: number): void {
    const n = this.scores.length;
    if (n === this.k && score <= this.scores[n - 1]!) return;
    let i = n === this.k ? n - 1 : n;
    while (i > 0 && this.scores[i - 1]! < score) {
      this.scores[i] = this.scores[i - 1]!;
      this.slots[i] = this.slots[i - 1]!;
      i--;
    }
    this.scores[i] = score;
    this.slots[i] = slot;
  }

  slotsBestFirst(): number[] {
    return this.slots.slice();
  }
}
