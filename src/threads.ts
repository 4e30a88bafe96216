import { parentPort, type ResourceLimits, Worker } from "node:worker_threads";
import { IdleCollector } from "./idle-collector";

/**
 * Starts a worker thread from a module of this source tree, given its path without extension: the compiled .js
 * beside the caller, or (from TypeScript sources: tests, `tsx`) the .ts through tsx's require hook.
 */
function startThread(modulePath: string, workerData?: unknown, resourceLimits?: ResourceLimits): Worker {
  const fromSources = __filename.endsWith(".ts");
  const script = `${modulePath}${fromSources ? ".ts" : ".js"}`;
  if (!fromSources) return new Worker(script, { workerData, resourceLimits });
  const bootstrap = `require(${JSON.stringify(require.resolve("tsx/cjs"))}); require(${JSON.stringify(script)});`;
  return new Worker(bootstrap, { eval: true, workerData, resourceLimits });
}

/** What a thread served by ThreadClient posts back for each call. */
export type ThreadReply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; name: string; message: string };

/**
 * The thread's side of ThreadClient: answers each call with what `run` returns (or throws), in arrival order, and
 * collects the thread's heap once calls have stopped coming for a while (IdleCollector).
 */
export function serveCalls<Call extends { id: number }>(run: (call: Call) => unknown | Promise<unknown>): void {
  const port = parentPort!;
  const idle = new IdleCollector().start();
  port.on("message", async (call: Call) => {
    idle.begin();
    let reply: ThreadReply;
    try {
      reply = { id: call.id, ok: true, value: await run(call) };
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      reply = { id: call.id, ok: false, name: e.name, message: e.message };
    }
    idle.end();
    port.postMessage(reply);
  });
}

/**
 * Calls to a worker thread, each answered by id: the thread starts on the first call (and again on the next call
 * after it dies), keeps the process alive only while a call is pending, and takes every pending call down with it
 * when it stops (they reject; none hangs).
 */
export class ThreadClient {
  private thread: Worker | undefined;
  private readonly pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  private nextId = 1;

  constructor(
    private readonly options: {
      modulePath: string;
      workerData?: unknown;
      /** The thread's V8 limits (default: Node's). */
      resourceLimits?: ResourceLimits;
      /** Names the thread in the error calls get when it stops. */
      name: string;
      /** The error a failed reply rejects with. */
      errorOf: (reply: { name: string; message: string }) => Error;
    },
  ) {}

  /** Whether the thread is running (it is started by a call). */
  get running(): boolean {
    return this.thread !== undefined;
  }

  call(message: object, transfer: ArrayBuffer[] = []): Promise<unknown> {
    const thread = this.start();
    const id = this.nextId++;
    if (this.pending.size === 0) thread.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      thread.postMessage({ ...message, id }, transfer);
    });
  }

  /** Stops the thread; calls still pending reject. */
  async terminate(): Promise<void> {
    await this.thread?.terminate();
  }

  private start(): Worker {
    if (this.thread) return this.thread;
    const thread = startThread(this.options.modulePath, this.options.workerData, this.options.resourceLimits);
    thread.unref();
    thread.on("message", (reply: ThreadReply) => {
      const waiting = this.pending.get(reply.id);
      if (!waiting) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) thread.unref();
      if (reply.ok) waiting.resolve(reply.value);
      else waiting.reject(this.options.errorOf(reply));
    });
    const stopped = (error: Error) => {
      if (this.thread !== thread) return;
      this.thread = undefined;
      for (const waiting of this.pending.values()) waiting.reject(error);
      this.pending.clear();
    };
    thread.on("error", stopped);
    thread.on("exit", (code) => stopped(new Error(`the ${this.options.name} stopped (exit code ${code})`)));
    this.thread = thread;
    return thread;
  }
}
