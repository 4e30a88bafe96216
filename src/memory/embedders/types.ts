/** Dense embeddings for memory chunks and queries. `id` names the model: one collection per embedder. */
export interface Embedder {
  readonly id: string;
  readonly dimensions: number;
  embed(texts: string[], signal?: AbortSignal): Promise<Float32Array[]>;
}
