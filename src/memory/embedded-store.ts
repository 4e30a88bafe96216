import { join } from "node:path";
import { ThreadClient } from "../threads";
import type { EngineCall, EngineSettings } from "./embedded/protocol";
import { shareWordVectors } from "./embedders/word-vectors";
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
  private readonly thread: ThreadClient;
  private opened = false;
  private readonly wordVectors = shareWordVectors();

  constructor(dataDir: string, collection: string, dimensions: number) {
    const settings: EngineSettings = { dataDir, collection, dimensions, wordVectors: this.wordVectors.shared };
    this.thread = new ThreadClient({
      modulePath: join(__dirname, "embedded", "worker"),
      workerData: settings,
      // The index lives in typed arrays, not on the thread's heap, and a search allocates little: Node's default
      // young generation (up to 48 MB, grown during the log's replay and never given back) was a tenth of the
      // store's resident memory at a million memories. Replay takes ~15 % longer with 8 MB.
      resourceLimits: { maxYoungGenerationSizeMb: 8 },
      name: "embedded memory store's thread",
      errorOf: (reply) => (reply.name === "InvalidCursorError" ? new InvalidCursorError() : new Error(reply.message)),
    });
  }

  async ready(): Promise<void> {
    await this.call({ op: "open" });
    this.opened = true;
  }

  async connected(): Promise<boolean> {
    return this.opened && this.thread.running;
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
    if (!this.thread.running) return;
    await this.call({ op: "close" }).catch(() => {});
    this.opened = false;
    await this.thread.terminate();
    this.wordVectors.release();
  }

  private call(call: EngineCall): Promise<unknown> {
    return this.thread.call(call);
  }
}
