import {
  closeSync,
  fdatasync,
  fdatasyncSync,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { LRUCache } from "lru-cache";
import { writeAll, writeAllSync } from "../../files";
import type { Memory, MemoryDeletion, MemoryPage, MemorySearch, NewMemory } from "../store";
import { type LogPlace, UserIndex } from "./user-index";

/**
 * The embedded store's engine, run in its own worker thread (see ../embedded-store.ts) so that nothing that grows
 * with a user's memory count runs on the server's event loop. The source of truth is an append-only log under
 * DATA_DIR/memory, fsynced before a write is acknowledged, replayed at start and compacted when mostly dead. What
 * searches need is indexed in memory per user (a search only ever touches that user's rows; see UserIndex); the
 * memories' texts stay in the log and are read back (page cache, one pread each) only for what a call returns.
 */
export class EmbeddedEngine {
  private readonly users = new Map<string, UserIndex>();
  private readonly directory: string;
  private readonly path: string;
  private fd: number | undefined;
  private logLines = 0;
  /** The log's length in bytes, counting the lines queued for the next group commit: where the next line goes. */
  private end = 0;
  /** Lines queued or being written, by offset: a memory is searchable (and readable) before it is on disk. */
  private readonly unwritten = new Map<number, string>();
  /** Offsets of the lines waiting for the next group commit, and the writes waiting for it to be on disk. */
  private queued: number[] = [];
  private waiting: { resolve(): void; reject(error: Error): void }[] = [];
  private flushing: Promise<void> | undefined;
  /**
   * Memories read back lately, by log offset: what recall returns recurs (a user's strong matches come back for
   * every question on their topic), and a hit saves a pread and a UTF-8 decode. Bounded in characters.
   */
  private readonly recent = new LRUCache<number, string>({
    maxSize: RECENT_MEMORY_CHARS,
    sizeCalculation: (text) => text.length,
  });
  /** A memory's JSON (as plain() wrote it: exactly a Memory's fields), from the queue, the cache or the file. */
  private readonly reader = ({ offset, memoryAt, memoryLength }: LogPlace): string => {
    const line = this.unwritten.get(offset);
    if (line !== undefined) return JSON.stringify((JSON.parse(line) as PutRecord).m);
    let text = this.recent.get(offset);
    if (text === undefined) {
      text = this.readText(offset + memoryAt, memoryLength);
      this.recent.set(offset, text);
    }
    return text;
  };
  /** Reused by reads of memories (most are a few hundred bytes). */
  private scratch = Buffer.allocUnsafe(64 << 10);

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
    // Read and append: memories are read back from the log by offset.
    this.fd = openSync(this.path, "a+", 0o600);
    this.replay();
    const live = [...this.users.values()].reduce((n, u) => n + u.live, 0);
    if (this.logLines > 1000 && this.logLines > 2 * live) this.compact();
    for (const user of this.users.values()) user.trim();
    this.end = fstatSync(this.fd).size;
    // A torn last line (a crash mid-append: never acknowledged) must not swallow the first line appended now.
    if (this.end > 0 && this.readBytes(this.end - 1, 1)[0] !== 0x0a) {
      writeSync(this.fd, "\n");
      this.end++;
    }
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
    const { places, durable } = this.append(
      memories.map((m) => JSON.stringify({ op: "put", u: userId, ...serialize(m) } satisfies PutRecord)),
    );
    const index = this.userIndex(userId);
    for (const [i, m] of memories.entries()) index.put(m, m.dense, m.sparse, places[i]!);
    await durable;
  }

  /** The results as one JSON text of ScoredMemory[] (see ScoredText): parsed once, by the caller. */
  search(userId: string, query: MemorySearch): string {
    const results = this.users.get(userId)?.search(query) ?? [];
    const items = results.map(
      ({ memoryJson, score, evidence }) =>
        `{"memory":${memoryJson},"score":${JSON.stringify(score)},"evidence":${JSON.stringify(evidence)}}`,
    );
    return `[${items.join(",")}]`;
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
    const slots = user.matching(which);
    if (slots.length === 0) return 0;
    // The deletion itself is logged (not the ids it covers): replayed in order, it covers the same memories.
    const { durable } = this.append([JSON.stringify({ op: "del", u: userId, ...which } satisfies DeleteRecord)]);
    this.removeFrom(userId, user, slots);
    await durable;
    return slots.length;
  }

  async close(): Promise<void> {
    await this.flushing;
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private userIndex(userId: string): UserIndex {
    const existing = this.users.get(userId);
    if (existing) return existing;
    const created = new UserIndex(this.dimensions, this.reader);
    this.users.set(userId, created);
    return created;
  }

  private removeFrom(userId: string, user: UserIndex, slots: readonly number[]): void {
    user.remove(slots);
    if (user.live === 0) this.users.delete(userId);
    else user.reclaimIfSparse();
  }

  /**
   * Group commit: lines are queued and written, with one fdatasync, by a flush that runs off this thread (the
   * libuv pool), so searches are answered while a write waits for the disk. `durable` resolves once they are on disk.
   */
  private append(lines: string[]): { places: LogPlace[]; durable: Promise<void> } {
    if (this.fd === undefined)
      return { places: [], durable: Promise.reject(new Error("the embedded memory store is not open")) };
    const places = lines.map((line) => {
      const place = { offset: this.end, length: Buffer.byteLength(line), ...memoryPlace(line) };
      this.unwritten.set(place.offset, line);
      this.queued.push(place.offset);
      this.end += place.length + 1;
      return place;
    });
    this.logLines += lines.length;
    const durable = new Promise<void>((resolve, reject) => this.waiting.push({ resolve, reject }));
    this.flushing ??= this.flush();
    return { places, durable };
  }

  private async flush(): Promise<void> {
    while (this.queued.length > 0) {
      const offsets = this.queued;
      const waiting = this.waiting;
      this.queued = [];
      this.waiting = [];
      try {
        await writeAll(this.fd!, Buffer.from(`${offsets.map((o) => this.unwritten.get(o)).join("\n")}\n`));
        // Readable from the file from now on (page cache), whether or not the sync below has finished.
        for (const offset of offsets) this.unwritten.delete(offset);
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

  /** Indexes every line of the log, in order; a line that does not parse is a torn append (never acknowledged). */
  private replay(): void {
    forEachLine(this.fd!, (line, place) => {
      let record: LogRecord;
      try {
        record = JSON.parse(line) as LogRecord;
      } catch {
        return; // a torn line after a crash: its write never resolved, so the outbox still holds it
      }
      this.logLines++;
      if (record.op === "put") {
        const { m, dense, sparse } = deserialize(record);
        this.userIndex(record.u).put(m, dense, sparse, place);
      } else {
        const user = this.users.get(record.u);
        const { op: _op, u: _u, ...which } = record;
        if (user) this.removeFrom(record.u, user, user.matching(which as MemoryDeletion));
      }
    });
  }

  /** Rewrites the log with only the live memories' lines (copied as they are) and points the index at them. */
  private compact(): void {
    const partial = `${this.path}.compacting`;
    const out = openSync(partial, "w", 0o600);
    let staged: Buffer[] = [];
    let stagedBytes = 0;
    let written = 0;
    let lines = 0;
    const stage = (bytes: Buffer) => {
      staged.push(bytes);
      stagedBytes += bytes.length;
      if (stagedBytes >= 4 << 20) drain();
    };
    const drain = () => {
      writeAllSync(out, Buffer.concat(staged));
      staged = [];
      stagedBytes = 0;
    };
    const newline = Buffer.from("\n");
    for (const user of this.users.values()) {
      user.relocate(({ offset, length }) => {
        const at = written;
        stage(this.readBytes(offset, length));
        stage(newline);
        written += length + 1;
        lines++;
        return at;
      });
    }
    drain();
    fdatasyncSync(out);
    closeSync(out);
    renameSync(partial, this.path);
    closeSync(this.fd!);
    this.fd = openSync(this.path, "a+", 0o600);
    this.recent.clear(); // keyed by the old offsets
    this.logLines = lines;
  }

  private readText(offset: number, length: number): string {
    if (length > this.scratch.length) return this.readBytes(offset, length).toString("utf8");
    this.readInto(this.scratch, offset, length);
    return this.scratch.toString("utf8", 0, length);
  }

  private readBytes(offset: number, length: number): Buffer {
    return this.readInto(Buffer.allocUnsafe(length), offset, length);
  }

  private readInto(bytes: Buffer, offset: number, length: number): Buffer {
    for (let read = 0; read < length; ) {
      const n = readSync(this.fd!, bytes, read, length - read, offset + read);
      if (n === 0) throw new Error("the memory log ends before a line the index points at");
      read += n;
    }
    return bytes;
  }
}

const fdatasyncAsync = promisify(fdatasync);
/** ~16 MB of recently read memories (UTF-16 in V8), however many memories the store holds. */
const RECENT_MEMORY_CHARS = 8 << 20;

/**
 * Where a put line's memory JSON is: after its `"m":` key, up to its `,"d":"` key. Neither sequence can occur
 * earlier inside a JSON string (a quote there is escaped), and the record's keys are written in this order.
 */
const MEMORY_KEY = '"m":';
const VECTOR_KEY = ',"d":"';
const MEMORY_KEY_BYTES = Buffer.from(MEMORY_KEY);
const VECTOR_KEY_BYTES = Buffer.from(VECTOR_KEY);

function memoryPlace(line: string): Pick<LogPlace, "memoryAt" | "memoryLength"> {
  const start = line.indexOf(MEMORY_KEY) + MEMORY_KEY.length;
  const end = line.indexOf(VECTOR_KEY, start);
  if (start < MEMORY_KEY.length || end < 0) return { memoryAt: 0, memoryLength: 0 };
  const memoryAt = Buffer.byteLength(line.slice(0, start));
  return { memoryAt, memoryLength: Buffer.byteLength(line.slice(start, end)) };
}

/** The same, found in the line's bytes (replay). */
function memoryPlaceIn(data: Buffer, start: number, end: number): Pick<LogPlace, "memoryAt" | "memoryLength"> {
  const key = data.indexOf(MEMORY_KEY_BYTES, start);
  const vector = key < 0 || key >= end ? -1 : data.indexOf(VECTOR_KEY_BYTES, key);
  if (vector < 0 || vector >= end) return { memoryAt: 0, memoryLength: 0 };
  const memoryAt = key + MEMORY_KEY_BYTES.length - start;
  return { memoryAt, memoryLength: vector - start - memoryAt };
}

/** Calls `visit` with each newline-terminated line of the file and where it is; an unterminated tail is skipped. */
function forEachLine(fd: number, visit: (line: string, place: LogPlace) => void): void {
  const chunk = Buffer.allocUnsafe(4 << 20);
  let carried = Buffer.alloc(0);
  /** The file offset of the first byte of `carried`. */
  let base = 0;
  for (let position = 0; ; ) {
    const n = readSync(fd, chunk, 0, chunk.length, position);
    if (n === 0) return;
    position += n;
    const data = carried.length > 0 ? Buffer.concat([carried, chunk.subarray(0, n)]) : chunk.subarray(0, n);
    let start = 0;
    for (let newline = data.indexOf(0x0a); newline !== -1; newline = data.indexOf(0x0a, start)) {
      if (newline > start) {
        const place = { offset: base + start, length: newline - start, ...memoryPlaceIn(data, start, newline) };
        visit(data.toString("utf8", start, newline), place);
      }
      start = newline + 1;
    }
    carried = Buffer.from(data.subarray(start)); // a copy: `chunk` is reused
    base += start;
  }
}

type PutRecord = { op: "put"; u: string } & ReturnType<typeof serialize>;
/** `ids` is also the format of logs written before deletions were logged as what they covered. */
type DeleteRecord = { op: "del"; u: string } & MemoryDeletion;
type LogRecord = PutRecord | DeleteRecord;

function serialize(m: NewMemory) {
  return {
    m: plain(m),
    d: Buffer.from(m.dense.buffer, m.dense.byteOffset, m.dense.byteLength).toString("base64"),
    s: [m.sparse.indices, m.sparse.values] as [number[], number[]],
  };
}

function deserialize(record: ReturnType<typeof serialize>) {
  const bytes = Buffer.from(record.d, "base64");
  const dense = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return { m: record.m, dense, sparse: { indices: record.s[0], values: record.s[1] } };
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
