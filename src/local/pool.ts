import type { Logger } from "../log";

export interface Backend {
  url: string;
  healthy: boolean;
  inFlight: number;
  consecutiveFailures: number;
  models: string[];
}

export interface VllmPoolOptions {
  urls: string[];
  apiKey?: string;
  strategy: "least-busy" | "round-robin";
  intervalMs: number;
  timeoutMs: number;
  /** Consecutive failed checks (or calls) before a backend leaves the rotation. */
  failureThreshold: number;
  logger: Logger;
}

/**
 * The vLLM servers of local mode. Each is checked on an interval (GET /models); after `failureThreshold`
 * consecutive failures it leaves the rotation, and the first successful check brings it back. Calls choose the
 * least busy healthy backend (or round-robin).
 */
export class VllmPool {
  readonly backends: Backend[];
  private timer: NodeJS.Timeout | undefined;
  private nextIndex = 0;

  constructor(private readonly options: VllmPoolOptions) {
    // Optimistically healthy until a check says otherwise, so the first requests do not wait for one.
    this.backends = options.urls.map((url) => ({
      url,
      healthy: true,
      inFlight: 0,
      consecutiveFailures: 0,
      models: [],
    }));
  }

  async start(): Promise<void> {
    await this.checkAll();
    this.timer = setInterval(() => void this.checkAll(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  get apiKey(): string | undefined {
    return this.options.apiKey;
  }

  /** Models served by healthy backends. */
  models(): string[] {
    return [...new Set(this.backends.filter((b) => b.healthy).flatMap((b) => b.models))];
  }

  pick(exclude: ReadonlySet<Backend> = new Set()): Backend | undefined {
    const candidates = this.backends.filter((b) => b.healthy && !exclude.has(b));
    if (candidates.length === 0) return undefined;
    if (this.options.strategy === "round-robin") return candidates[this.nextIndex++ % candidates.length];
    const start = this.nextIndex++ % candidates.length;
    let best = candidates[start]!;
    for (let i = 1; i < candidates.length; i++) {
      const candidate = candidates[(start + i) % candidates.length]!;
      if (candidate.inFlight < best.inFlight) best = candidate;
    }
    return best;
  }

  /** A call failed in a way that says the backend is in trouble (connection refused, 5xx). */
  reportFailure(backend: Backend): void {
    this.recordFailure(backend, "call failed");
  }

  async checkAll(): Promise<void> {
    await Promise.all(this.backends.map((b) => this.check(b)));
  }

  private async check(backend: Backend): Promise<void> {
    try {
      const res = await fetch(`${backend.url}/models`, {
        headers: this.options.apiKey ? { authorization: `Bearer ${this.options.apiKey}` } : {},
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const body = (await res.json()) as { data?: Array<{ id?: string }> };
      backend.models = (body.data ?? []).map((m) => String(m.id)).filter(Boolean);
      if (!backend.healthy) this.options.logger.info("vllm backend back in rotation", { backend: backend.url });
      backend.healthy = true;
      backend.consecutiveFailures = 0;
    } catch (error) {
      this.recordFailure(backend, (error as Error).message);
    }
  }

  private recordFailure(backend: Backend, reason: string): void {
    backend.consecutiveFailures++;
    if (backend.healthy && backend.consecutiveFailures >= this.options.failureThreshold) {
      backend.healthy = false;
      this.options.logger.warn("vllm backend out of rotation", { backend: backend.url, reason });
    }
  }
}
