import type { Clock } from "../clock";
import type { Config } from "../config";
import type { Database } from "../db";
import type { Logger } from "../log";
import type { Metrics } from "../metrics";
import { EmbeddedMemoryStore } from "./embedded-store";
import { OpenAiCompatibleEmbedder } from "./embedders/openai-compatible";
import type { Embedder } from "./embedders/types";
import { WordVectorEmbedder, wordVectors } from "./embedders/word-vectors";
import { QdrantMemoryStore } from "./qdrant-store";
import { MemoryService } from "./service";
import type { MemoryStore } from "./store";

export { ensureWordVectorCache } from "./embedders/word-vectors";
export type { ChatTurn } from "./recall";
export { exchangeToRemember, REMEMBERED_CHARS } from "./recall";
export { type ReindexReport, reindexMemories } from "./reindex";
export { type MemoryControls, MemoryService, type Recall, writesMemory } from "./service";
export { InvalidCursorError, type Memory, type ScoredMemory } from "./store";

export function createEmbedder(config: Config): Embedder {
  const { provider, model, dimensions, baseUrl, apiKey } = config.embedding;
  if (provider === "builtin") return new WordVectorEmbedder();
  return new OpenAiCompatibleEmbedder({
    model: model ?? (provider === "openai" ? "text-embedding-3-small" : "default"),
    dimensions,
    baseUrl,
    apiKey,
  });
}

/** One collection per embedding model: vectors of different models cannot be compared. */
export function collectionName(config: Config, embedder: Embedder): string {
  return `${config.qdrant.collection}_${embedder.id.replace(/[^A-Za-z0-9_-]+/g, "-")}`;
}

/** Qdrant when QDRANT_URL is set, else the embedded store under DATA_DIR. */
export function createMemoryStore(config: Config, collection: string, dimensions: number): MemoryStore {
  const { url, apiKey } = config.qdrant;
  if (url) return new QdrantMemoryStore({ url, apiKey }, collection, dimensions);
  return new EmbeddedMemoryStore(config.dataDir, collection, dimensions);
}

export function createMemory(
  config: Config,
  db: Database,
  logger: Logger,
  metrics: Metrics,
  clock: Clock,
): MemoryService {
  const embedder = createEmbedder(config);
  // Recall's related-word coverage reads the built-in word vectors whatever the embedder (in the embedded store's
  // thread, which shares this process's copy): loaded now, not by the first recall (reading them holds the event
  // loop for ~200 ms).
  wordVectors();
  const store = createMemoryStore(config, collectionName(config, embedder), embedder.dimensions);
  return new MemoryService({
    store,
    embedder,
    db,
    logger,
    metrics,
    settings: config.memory,
    tiers: config.tiers,
    clock,
  });
}
