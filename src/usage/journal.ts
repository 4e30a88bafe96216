import { randomBytes } from "node:crypto";
import {
  appendFileSync,
  closeSync,
  fdatasync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { join } from "node:path";
import { writeAllSync } from "../files";
import type { Logger } from "../log";

/**
 * The usage journal: every usage record is appended to a local file before its response ends, so a process kill
 * at any moment loses no usage row of an answered request; the batch writer confirms what reached PostgreSQL and
 * a segment whose records are all confirmed is deleted. Writes are group-committed (one write per event-loop turn
 * however many requests end in it, made on the event loop: a page-cache copy of a few kB, cheaper than the thread
 * pool's hand-off) and fdatasync runs on a timer (off the loop), never per request: a machine crash may lose
 * the records of the last sync interval, a process crash none.
 *
 * Files in `dir`: `usage-<process id>-<n>.journal` segments (NDJSON), and `usage-quarantine.ndjson` for lines that
 * could not be read back (a line torn by a kill during its write); a quarantined line never blocks start-up.
 */

/** A record on its way to PostgreSQL, with the segment that holds it on disk. */
export interface JournalEntry<T> {
  record: T;
  /** The record as one JSON line, serialized once: written to the journal, then sent to PostgreSQL as it is. */
  line: string;
  segment?: Segment;
  confirmed?: boolean;
  /** Dropped from the in-memory queue: its segment must be read again. */
  evicted?: boolean;
}

export interface Segment {
  readonly path: string;
  /** Records on disk in this segment not yet confirmed in PostgreSQL. */
  unconfirmed: number;
  /** No more appends: deleted once unconfirmed reaches 0 (unless some of its records were evicted). */
  sealed: boolean;
}

export interface UsageJournalOptions {
  dir: string;
  logger: Logger;
  /** Records per segment before a new one is started. */
  segmentRecords?: number;
  syncIntervalMs?: number;
  /** Turns a line read back from disk into an entry's record and line; throws (with a reason) for anything that is
   * not a record. */
  parse: (line: string) => { record: unknown; line: string };
}

const SEGMENT = /^usage-[0-9a-z-]+\.journal$/;
// Written by versions before the journal; read once and replayed like a segment.
const LEGACY_SPOOLS = ["usage-spool.ndjson", "usage-spool.ndjson.replaying"];
export const QUARANTINE_FILE = "usage-quarantine.ndjson";

export class UsageJournal<T> {
  private active: { segment: Segment; fd: number; records: number } | undefined;
  private nextSegment = 0;
  // This process's own segment names: files of an earlier process (or, misconfigured, of another one sharing the
  // directory) are never appended to, only replayed.
  private readonly segmentPrefix = `usage-${Date.now().toString(36)}-${randomBytes(4).toString("hex")}`;
  private queued: JournalEntry<T>[] = [];
  private waiters: Array<() => void> = [];
  private writing: Promise<void> | undefined;
  private dirty = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private writeFailures = 0;
  // Segments some of whose records were dropped from memory (the queue's bound): read again once the queue drains.
  private readonly evictedSegments = new Set<Segment>();
  private readonly segmentRecords: number;

  constructor(private readonly options: UsageJournalOptions) {
    this.segmentRecords = options.segmentRecords ?? 10_000;
  }

  /**
   * Opens the directory and returns what earlier processes left unconfirmed, in order (each entry already tied
   * to its segment). Lines that cannot be read are moved to the quarantine file.
   */
  open(): JournalEntry<T>[] {
    mkdirSync(this.options.dir, { recursive: true, mode: 0o700 });
    const files = readdirSync(this.options.dir);
    const segments = files.filter((f) => SEGMENT.test(f)).sort();
    const left = [...LEGACY_SPOOLS.filter((f) => files.includes(f)), ...segments];
    const entries = left.flatMap((file) => this.readSegment(join(this.options.dir, file)));
    this.syncTimer = setInterval(() => this.sync(), this.options.syncIntervalMs ?? 1_000);
    this.syncTimer.unref();
    return entries;
  }

  /** Resolves once the record is in the file (in the OS: it survives this process being killed). */
  append(entry: JournalEntry<T>): Promise<void> {
    this.queued.push(entry);
    const written = new Promise<void>((resolve) => this.waiters.push(resolve));
    this.writing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.writeQueued());
    return written;
  }

  /** The record reached PostgreSQL: its segment may be deleted once all of its records have. */
  confirm(entry: JournalEntry<T>): void {
    if (entry.confirmed) return;
    entry.confirmed = true;
    const segment = entry.segment;
    if (!segment) return; // not written yet: the writer will not count it
    segment.unconfirmed--;
    this.deleteIfDone(segment);
  }

  /** The queue dropped this entry from memory: its segment is read again later (see reloadEvicted). */
  evict(entry: JournalEntry<T>): void {
    entry.evicted = true;
    if (entry.segment) this.evictedSegments.add(entry.segment); // else: marked when written
  }

  /** Some records are on disk only (dropped from memory by the queue's bound). */
  get hasEvicted(): boolean {
    return this.evictedSegments.size > 0;
  }

  /** The records of one segment that had some dropped from memory, read back from disk (at most one segment's
   * worth in memory at a time; already-written records among them are harmless replays). */
  async reloadEvicted(): Promise<JournalEntry<T>[]> {
    while (this.writing) await this.writing;
    if (this.active && this.evictedSegments.has(this.active.segment)) this.seal();
    for (const segment of this.evictedSegments) {
      this.evictedSegments.delete(segment);
      return this.readSegment(segment.path);
    }
    return [];
  }

  /** Waits for pending writes, syncs and closes the active segment (its unconfirmed records stay for next start). */
  async close(): Promise<void> {
    if (this.syncTimer) clearInterval(this.syncTimer);
    while (this.writing) await this.writing;
    if (this.active) {
      fsyncSync(this.active.fd);
      closeSync(this.active.fd);
      const { segment } = this.active;
      this.active = undefined;
      segment.sealed = true;
      this.deleteIfDone(segment);
    }
  }

  private async writeQueued(): Promise<void> {
    while (this.queued.length > 0) {
      const entries = this.queued;
      const waiters = this.waiters;
      this.queued = [];
      this.waiters = [];
      const target = this.activeSegment();
      const text = `${entries.map((e) => e.line).join("\n")}\n`;
      try {
        writeAllSync(target.fd, Buffer.from(text, "utf8"));
        this.dirty = true;
        if (this.writeFailures > 0) this.options.logger.info("usage journal writable again");
        this.writeFailures = 0;
      } catch (error) {
        // A full or failing disk must not stop answering: the records are still queued for PostgreSQL.
        if (this.writeFailures++ === 0) this.options.logger.error("usage journal write failed", { error });
        for (const resolve of waiters) resolve();
        continue;
      }
      for (const entry of entries) {
        entry.segment = target.segment;
        if (entry.evicted) this.evictedSegments.add(target.segment);
        if (!entry.confirmed) target.segment.unconfirmed++;
      }
      target.records += entries.length;
      for (const resolve of waiters) resolve();
      if (target.records >= this.segmentRecords) this.seal();
    }
    this.writing = undefined;
  }

  private activeSegment(): { segment: Segment; fd: number; records: number } {
    if (!this.active) {
      const path = join(this.options.dir, `${this.segmentPrefix}-${this.nextSegment++}.journal`);
      const fd = openSync(path, "a", 0o600);
      this.active = { segment: { path, unconfirmed: 0, sealed: false }, fd, records: 0 };
    }
    return this.active;
  }

  private seal(): void {
    const active = this.active;
    if (!active) return;
    this.active = undefined;
    fsyncSync(active.fd);
    closeSync(active.fd);
    active.segment.sealed = true;
    this.deleteIfDone(active.segment);
  }

  private sync(): void {
    if (!this.dirty || !this.active) return;
    this.dirty = false;
    fdatasync(this.active.fd, () => {});
  }

  private deleteIfDone(segment: Segment): void {
    if (segment.sealed && segment.unconfirmed <= 0 && !this.evictedSegments.has(segment))
      rmSync(segment.path, { force: true });
  }

  /** Reads a file left on disk as a sealed segment; unreadable lines go to the quarantine file. */
  private readSegment(path: string): JournalEntry<T>[] {
    const segment: Segment = { path, unconfirmed: 0, sealed: true };
    const entries: JournalEntry<T>[] = [];
    const quarantined: string[] = [];
    for (const line of readFileSync(path, "utf8").split("\n")) {
      if (line.trim() === "") continue;
      try {
        const parsed = this.options.parse(line);
        entries.push({ record: parsed.record as T, line: parsed.line, segment });
      } catch (error) {
        quarantined.push(
          JSON.stringify({ file: path, reason: error instanceof Error ? error.message : String(error), line }),
        );
      }
    }
    if (quarantined.length > 0) {
      appendFileSync(join(this.options.dir, QUARANTINE_FILE), `${quarantined.join("\n")}\n`, { mode: 0o600 });
      this.options.logger.error("unreadable usage journal lines quarantined", {
        file: path,
        lines: quarantined.length,
        quarantine: QUARANTINE_FILE,
      });
    }
    segment.unconfirmed = entries.length;
    if (entries.length === 0) rmSync(path, { force: true });
    return entries;
  }
}
