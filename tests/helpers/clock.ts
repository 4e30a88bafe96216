import type { Clock } from "../../src/clock";

/**
 * A clock for the services under test, so no test waits for a wall-clock boundary: frozen at a chosen instant
 * (time moves only when the test calls `advance`), or `running` from that instant at the pace of real time (for a
 * client that really waits, such as an SDK honouring retry-after).
 */
export class TestClock {
  private readonly startedAt = Date.now();

  constructor(
    private at: number,
    private readonly running = false,
  ) {}

  readonly now: Clock = () => this.at + (this.running ? Date.now() - this.startedAt : 0);

  advance(ms: number): void {
    this.at += ms;
  }
}

/** An instant `intoMinuteMs` after the start of the current minute: a test's requests then share one window. */
export const inThisMinute = (intoMinuteMs = 1_000) => Math.floor(Date.now() / 60_000) * 60_000 + intoMinuteMs;
