import { getHeapStatistics } from "node:v8";

/**
 * V8's gc extension (`--expose-gc`). Here: a full collection run as a task, of the "last resort" flavour, the only
 * one that also gives the pages it frees back to the system (a regular one keeps them pooled, and resident).
 */
export type CollectGarbage = (options: { type: "major"; execution: "async"; flavor: "last-resort" }) => unknown;

const CHECK_PERIOD_MS = 5_000;
/**
 * This many checks in a row must find the thread quiet (~30 s with nothing begun and nothing in flight). A lull of
 * a few seconds keeps the heap as the last burst left it, ready for the next: a burst that follows a collection
 * pays for growing the heap again (2,000 streams opened 10 s after one: p99 ~6.2 s against ~3.8 s, docs/PROXY.md).
 */
const QUIET_CHECKS = 6;
/** How much the heap must have grown since the last collection to be worth one (a health probe's few kilobytes
 * every few seconds are not). */
const WORTH_COLLECTING_BYTES = 16 * 2 ** 20;

/**
 * Gives a thread's heap back once the process has gone quiet. V8 collects the old generation when allocation pushes
 * it to a limit, so after a burst the heap stays as large as the burst left it for as long as the process is quiet,
 * most of it garbage (after the bench's warm-up load: 209 MB used, 61 MB of it live). Once QUIET_CHECKS checks in a
 * row find no work begun and none in flight, after some, this runs one full collection, and V8 shrinks the heap and
 * returns its pages. Never while work is in flight (a pause would land on it), never twice without new work, and only
 * once the heap has grown by WORTH_COLLECTING_BYTES since the last one. Needs `--expose-gc` (SERVER_NODE_FLAGS);
 * without it, it does nothing.
 */
export class IdleCollector {
  private begun = 0;
  private seen = 0;
  private inFlight = 0;
  private quietChecks = 0;
  /** Owed from the start: loading the application leaves garbage too. */
  private owed = true;
  private timer: NodeJS.Timeout | undefined;
  /** Heap in use after the last collection (none yet: 0). */
  private collectedTo = 0;

  constructor(
    private readonly collect: CollectGarbage | undefined = exposedGc(),
    private readonly heapUsed: () => number = () => getHeapStatistics().used_heap_size,
  ) {}

  /** A unit of work (a request, a call to a thread) begins; `end` when it is over. */
  begin(): void {
    this.begun++;
    this.inFlight++;
  }

  end(): void {
    this.inFlight--;
  }

  /** One check: collects on the QUIET_CHECKS-th in a row that finds nothing begun since the one before and nothing
   * in flight, when work was done before and the heap has grown enough since the last collection. */
  check(): boolean {
    if (this.begun !== this.seen || this.inFlight > 0) {
      this.seen = this.begun;
      this.owed = true;
      this.quietChecks = 0;
      return false;
    }
    if (++this.quietChecks < QUIET_CHECKS || !this.owed || !this.collect) return false;
    if (this.heapUsed() - this.collectedTo < WORTH_COLLECTING_BYTES) return false;
    this.owed = false;
    Promise.resolve(this.collect({ type: "major", execution: "async", flavor: "last-resort" })).then(() => {
      this.collectedTo = this.heapUsed();
    });
    return true;
  }

  /** Checks every CHECK_PERIOD_MS (a timer that does not keep the process alive); nothing without `--expose-gc`. */
  start(): this {
    if (this.collect && !this.timer) {
      this.timer = setInterval(() => this.check(), CHECK_PERIOD_MS);
      this.timer.unref();
    }
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

/** A thread quiet this long has had its collection started: QUIET_CHECKS quiet checks, and the period before the
 * first of them. */
export const COLLECTED_WITHIN_QUIET_MS = CHECK_PERIOD_MS * (QUIET_CHECKS + 1);

const exposedGc = () => (globalThis as { gc?: CollectGarbage }).gc;
