import type { CounterStore, LimitName, Limits, Usage, Windows } from "./types";

interface Counters {
  minute: number;
  day: number;
  requestsMinute: number;
  requestsDay: number;
  tokensMinute: number;
  tokensDay: number;
}

/** Counters in this process: the embedded default (one replica), and the fallback while Redis is away. */
export class InProcessCounters implements CounterStore {
  private readonly bySubject = new Map<string, Counters>();
  private prunedOnDay = -1;

  private countersFor(subject: string, windows: Windows): Counters {
    let c = this.bySubject.get(subject);
    if (!c) {
      c = {
        minute: windows.minute,
        day: windows.day,
        requestsMinute: 0,
        requestsDay: 0,
        tokensMinute: 0,
        tokensDay: 0,
      };
      this.bySubject.set(subject, c);
    }
    if (c.minute !== windows.minute) Object.assign(c, { minute: windows.minute, requestsMinute: 0, tokensMinute: 0 });
    if (c.day !== windows.day) Object.assign(c, { day: windows.day, requestsDay: 0, tokensDay: 0 });
    return c;
  }

  async take(subject: string, limits: Limits, estimate: number, windows: Windows) {
    if (windows.day !== this.prunedOnDay) this.prune(windows.day);
    const c = this.countersFor(subject, windows);
    const k = limits.key ? this.countersFor(`${subject}:key:${limits.key.id}`, windows) : undefined;
    const over = (used: number, max: number | null | undefined) => max !== null && max !== undefined && used > max;
    let blocked: LimitName | null = null;
    if (over(c.requestsMinute + 1, limits.requestsPerMinute)) blocked = "requests_per_minute";
    else if (over(c.requestsDay + 1, limits.requestsPerDay)) blocked = "requests_per_day";
    else if (over(c.tokensMinute + estimate, limits.tokensPerMinute)) blocked = "tokens_per_minute";
    else if (over(c.tokensDay + estimate, limits.tokensPerDay)) blocked = "tokens_per_day";
    else if (k && over(k.requestsMinute + 1, limits.key?.requestsPerMinute)) blocked = "key_requests_per_minute";
    else if (k && over(k.requestsDay + 1, limits.key?.requestsPerDay)) blocked = "key_requests_per_day";
    if (!blocked) {
      c.requestsMinute++;
      c.requestsDay++;
      c.tokensMinute += estimate;
      c.tokensDay += estimate;
      if (k) {
        k.requestsMinute++;
        k.requestsDay++;
      }
    }
    const usage: Usage = {
      requestsMinute: c.requestsMinute,
      requestsDay: c.requestsDay,
      tokensMinute: c.tokensMinute,
      tokensDay: c.tokensDay,
      keyRequestsMinute: k?.requestsMinute ?? 0,
      keyRequestsDay: k?.requestsDay ?? 0,
    };
    return { blocked, usage };
  }

  async peek(subject: string, keyId: string | undefined, windows: Windows): Promise<Usage> {
    const read = (name: string) => {
      const c = this.bySubject.get(name);
      return {
        minute: c && c.minute === windows.minute ? c : undefined,
        day: c && c.day === windows.day ? c : undefined,
      };
    };
    const c = read(subject);
    const k = keyId ? read(`${subject}:key:${keyId}`) : { minute: undefined, day: undefined };
    return {
      requestsMinute: c.minute?.requestsMinute ?? 0,
      requestsDay: c.day?.requestsDay ?? 0,
      tokensMinute: c.minute?.tokensMinute ?? 0,
      tokensDay: c.day?.tokensDay ?? 0,
      keyRequestsMinute: k.minute?.requestsMinute ?? 0,
      keyRequestsDay: k.day?.requestsDay ?? 0,
    };
  }

  async adjustTokens(subject: string, windows: Windows, delta: number) {
    const c = this.bySubject.get(subject);
    if (!c) return;
    if (c.minute === windows.minute) c.tokensMinute = Math.max(0, c.tokensMinute + delta);
    if (c.day === windows.day) c.tokensDay = Math.max(0, c.tokensDay + delta);
  }

  /** Drops subjects idle since before today (run at the first take of each day): the map holds one day's callers. */
  private prune(today: number): void {
    this.prunedOnDay = today;
    for (const [subject, c] of this.bySubject) if (c.day < today) this.bySubject.delete(subject);
  }

  async ready() {}

  async close() {}
}
