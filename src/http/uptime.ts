/** One check of every component: operational, down, or not configured (which does not count). */
export type ComponentStates = Record<string, "operational" | "down" | "not configured">;

const DAY_MS = 24 * 3_600_000;

/**
 * The share of recent checks in which each component was operational, over a sliding 24 hours (or since this
 * process started, when that is shorter). Kept in this process only: each replica reports what it saw.
 * The clock is injected so tests move time instead of waiting for it.
 */
export class UptimeHistory {
  private samples: { at: number; states: ComponentStates }[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  record(states: ComponentStates): void {
    const at = this.now();
    this.samples.push({ at, states });
    const cutoff = at - DAY_MS;
    // Oldest first: drop the expired prefix in one go.
    const firstKept = this.samples.findIndex((s) => s.at >= cutoff);
    if (firstKept > 0) this.samples = this.samples.slice(firstKept);
  }

  /** Per component: percent of its checks in the window that found it operational (2 decimals), or null. */
  percentages(): Record<string, number | null> {
    const cutoff = this.now() - DAY_MS;
    const counts = new Map<string, { up: number; all: number }>();
    for (const { at, states } of this.samples) {
      if (at < cutoff) continue;
      for (const [name, state] of Object.entries(states)) {
        if (state === "not configured") continue;
        const c = counts.get(name) ?? { up: 0, all: 0 };
        c.all++;
        if (state === "operational") c.up++;
        counts.set(name, c);
      }
    }
    const names = new Set(this.samples.flatMap((s) => Object.keys(s.states)));
    return Object.fromEntries(
      [...names].map((name) => {
        const c = counts.get(name);
        return [name, c ? Math.round((c.up / c.all) * 10_000) / 100 : null];
      }),
    );
  }

  /** How much time the percentages cover: up to 24 hours. */
  windowSeconds(): number {
    const first = this.samples.find((s) => s.at >= this.now() - DAY_MS);
    return first ? Math.round((this.now() - first.at) / 1000) : 0;
  }
}
