import type {
  ChatChunk,
  ChatCompletion,
  ChatRequest,
  EmbeddingRequest,
  EmbeddingResponse,
  TextCompletion,
} from "./wire";

/** Where one call goes: a provider endpoint, the key to use there (the user's own, decrypted for this call). */
export interface CallTarget {
  provider: string;
  baseUrl: string;
  apiKey: string;
  /** Model name as the provider knows it (without our `provider/` prefix). */
  model: string;
}

export interface CallOptions {
  signal: AbortSignal;
  timeoutMs: number;
}

/** The one shape every provider presents to the pipeline: OpenAI wire format in and out, errors as UpstreamError. */
export interface ProviderAdapter {
  complete(target: CallTarget, request: ChatRequest, options: CallOptions): Promise<ChatCompletion>;
  /** Resolves once the provider has accepted the request, so failures before the first byte reject here. */
  stream(target: CallTarget, request: ChatRequest, options: CallOptions): Promise<AsyncIterable<ChatChunk>>;
  embed?(target: CallTarget, request: EmbeddingRequest, options: CallOptions): Promise<EmbeddingResponse>;
  /** OpenAI's legacy text completions (`/completions`), for providers that serve them. */
  completeText?(target: CallTarget, request: Record<string, unknown>, options: CallOptions): Promise<TextCompletion>;
  streamText?(
    target: CallTarget,
    request: Record<string, unknown>,
    options: CallOptions,
  ): Promise<AsyncIterable<TextCompletion>>;
  /** The provider's own count of a Messages API request's input tokens (Anthropic's count_tokens). */
  countTokens?(target: CallTarget, request: Record<string, unknown>, options: CallOptions): Promise<number>;
}

/** A provider's failure, already stripped of anything secret. `status` is the provider's (0: not reached). */
export class UpstreamError extends Error {
  constructor(
    readonly provider: string,
    readonly status: number,
    message: string,
    readonly details: { type?: string; code?: string | null; param?: string | null; retryAfter?: string } = {},
  ) {
    super(message);
    this.name = "UpstreamError";
  }
}
