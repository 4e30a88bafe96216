import type OpenAI from "openai";
import type { Embedder } from "./types";

/**
 * Embeddings from an OpenAI-compatible `/embeddings` endpoint through the official SDK: OpenAI itself (with the
 * operator's EMBEDDING_API_KEY) or a vLLM server started with an embedding model (local mode).
 */
export class OpenAiCompatibleEmbedder implements Embedder {
  readonly id: string;
  private readonly client: OpenAI;

  constructor(
    private readonly options: {
      model: string;
      dimensions: number;
      baseUrl?: string;
      apiKey?: string;
      timeoutMs?: number;
    },
  ) {
    this.id = options.model;
    // The SDK (~230 modules, ~30 MB resident) only where this embedder is configured.
    const sdk = require("openai") as typeof import("openai");
    this.client = new sdk.default({
      apiKey: options.apiKey ?? "unused",
      baseURL: options.baseUrl,
      maxRetries: 2,
      timeout: options.timeoutMs ?? 10_000,
    });
  }

  get dimensions(): number {
    return this.options.dimensions;
  }

  async embed(texts: string[], signal?: AbortSignal): Promise<Float32Array[]> {
    if (texts.length === 0) return [];
    const response = await this.client.embeddings.create(
      { model: this.options.model, input: texts, encoding_format: "float" },
      { signal },
    );
    const out = new Array<Float32Array>(texts.length);
    for (const item of response.data) {
      if (item.embedding.length !== this.options.dimensions) {
        throw new Error(
          `embedding model ${this.options.model} returned ${item.embedding.length} dimensions, configured ${this.options.dimensions}`,
        );
      }
      out[item.index] = normalized(Float32Array.from(item.embedding));
    }
    return out;
  }
}

function normalized(v: Float32Array): Float32Array {
  let norm = 0;
  for (const x of v) norm += x * x;
  norm = Math.sqrt(norm);
  if (norm > 0) for (let i = 0; i < v.length; i++) v[i]! /= norm;
  return v;
}
