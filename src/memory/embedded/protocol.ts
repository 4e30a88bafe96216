import type { SharedWordVectors } from "../embedders/word-vectors";
import type { Memory, MemoryDeletion, MemorySearch, NewMemory, UserMemories } from "../store";

/** What the embedded store's thread is started with. */
export interface EngineSettings {
  dataDir: string;
  collection: string;
  dimensions: number;
  /** The process's word vectors, for related-word coverage where the candidates are. */
  wordVectors: SharedWordVectors;
}

/** One call to the store's thread; each names its user (the tenant filter travels with every read and delete). */
export type EngineCall =
  | { op: "open" }
  | { op: "close" }
  | { op: "siblings"; prefix: string }
  | { op: "upsert"; userId: string; memories: NewMemory[] }
  | { op: "search"; userId: string; query: MemorySearch }
  | { op: "neighbours"; userId: string; of: readonly Memory[] }
  | { op: "list"; userId: string; options: Parameters<UserMemories["list"]>[0] }
  | { op: "delete"; userId: string; which: MemoryDeletion };

export type EngineRequest = EngineCall & { id: number };
