import { join } from "node:path";
import type { Worker } from "node:worker_threads";
import { startThread } from "../threads";
import type { EngineCall, EngineReply, EngineSettings } from "./embedded/protocol";
import {
  InvalidCursorError,
  type Memory,
  type MemoryPage,
  type MemoryStore,
  type ScoredMemory,
  type UserMemories,
} from "./store";

/**
 * The default vector store, embedded in the server's process: the index and its log live in a worker thread
 * (./embedded/engine.ts), so searches and fsynced writes never hold the event loop that serves requests, however
 * many memories a user has. A thread that dies is started again on the next call (it replays the log). One process
 * only: with several replicas, use Qdrant.
 */
export class EmbeddedMemoryStore implements MemoryStore {
  readonly kind = "embedded" as const;
  private worker: Worker | undefined;
  private readonly pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  private nextId = 1;
  private opened = false;
  private readonly settings: EngineSettings;

  constructor(dataDir: string, collection: string, dimensions: number) {
    this.settings = { dataDir, collection, dimensions };
  }

  async ready(): Promise<void> {
    await this.call({ op: "open" });
    this.opened = true;
  }

  async connected(): Promise<boolean> {
    return this.opened && this.worker !== undefined;
  }

  siblings(prefix: string): Promise<string[]> {
    return this.call({ op: "siblings", prefix }) as Promise<string[]>;
  }

  forUser(userId: string): UserMemories {
    return {
      upsert: async (memories) => {
        if (memories.length > 0) await this.call({ op: "upsert", userId, memories });
      },
      search: async (query) =>
        JSON.parse((await this.call({ op: "search", userId, query })) as string) as ScoredMemory[],
      neighbours: (of) => this.call({ op: "neighbours", userId, of }) as Promise<Memory[][]>,
      list: (options) => this.call({ op: "list", userId, options }) as Promise<MemoryPage>,
      delete: (which) => this.call({ op: "delete", userId, which }) as Promise<number>,
    };
  }

  async close(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    await this.call({ op: "close" }).catch(() => {});
    this.worker = undefined;
    this.opened = false;
    await worker.terminate();
  }

  private call(call: EngineCall): Promise<unknown> {
    const worker = this.thread();
    const id = this.nextId++;
    // Referenced only while a call is pending: an idle store never keeps the process alive.
    if (this.pending.size === 0) worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ ...call, id });
    });
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = startThread(join(__dirname, "embedded", "worker"), this.settings);
    worker.unref();
    worker.on("message", (reply: EngineReply) => {
      const waiting = this.pending.get(reply.id);
      if (!waiting) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      if (reply.ok) waiting.resolve(reply.value);
      else waiting.reject(reply.name === "InvalidCursorError" ? new InvalidCursorError() : new Error(reply.message));
    });
    const stopped = (error: Error) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      for (const waiting of this.pending.values()) waiting.reject(error);
      this.pending.clear();
    };
    worker.on("error", stopped);
    worker.on("exit", (code) => stopped(new Error(`the embedded memory store's thread stopped (exit code ${code})`)));
    this.worker = worker;
    return worker;
  }
}
