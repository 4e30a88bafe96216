import { redactSecret, redactText } from "../log";
import { type CallTarget, UpstreamError } from "./types";

type ErrorClass = abstract new (...args: never[]) => Error;

/** The error classes an official SDK exports (openai and @anthropic-ai/sdk share the same generator and shapes). */
export interface SdkErrorClasses {
  APIError: ErrorClass;
  APIConnectionError: ErrorClass;
  APIConnectionTimeoutError: ErrorClass;
  APIUserAbortError: ErrorClass;
}

interface SdkApiError {
  status?: number;
  message: string;
  error?: {
    message?: string;
    type?: string;
    code?: string | null;
    param?: string | null;
    error?: { message?: string; type?: string };
  };
  headers?: Headers;
}

/** Provider text as it may be shown: the call's own key (whole, or any 8 characters of it) and key-shaped strings
 * removed. */
export function cleanUpstreamText({ apiKey }: Pick<CallTarget, "apiKey">, text: string): string {
  return redactText(redactSecret(text, apiKey));
}

/** The provider answered, but not in its protocol (a 200 that is not JSON, a connection cut mid-body): 502. */
export function unreadableAnswer(provider: string, midStream: boolean): UpstreamError {
  return new UpstreamError(provider, 502, `${provider} sent a response that could not be read.`, {
    code: midStream ? "upstream_stream_error" : "upstream_error",
  });
}

export function upstreamTimeout(provider: string): UpstreamError {
  return new UpstreamError(provider, 0, `${provider} did not answer in time.`, { code: "upstream_timeout" });
}

export function upstreamUnreachable(provider: string): UpstreamError {
  return new UpstreamError(provider, 0, `Could not reach ${provider}.`, { code: "upstream_unreachable" });
}

/** The provider failed after the first byte with a message of its own. */
export function brokenStream(target: Pick<CallTarget, "provider" | "apiKey">, message: string): UpstreamError {
  return new UpstreamError(target.provider, 502, cleanUpstreamText(target, message || "the stream broke off"), {
    code: "upstream_stream_error",
  });
}

/**
 * Turns an SDK error into an UpstreamError with nothing secret in it: key-shaped strings, and the very key the call
 * was made with (`apiKey`), whatever its format, in full or in part. Aborts (the client left) pass through
 * unchanged. `midStream`: the provider had already started answering, so any failure is a stream error.
 */
export function toUpstreamError(
  target: Pick<CallTarget, "provider" | "apiKey">,
  error: unknown,
  sdk: SdkErrorClasses,
  midStream = false,
): unknown {
  const { provider } = target;
  if (error instanceof UpstreamError || error instanceof sdk.APIUserAbortError || isAbortError(error)) return error;
  // Anything else thrown by the SDK call is the provider's protocol failing: a 200 whose body is not JSON, a
  // connection dropped mid-body or mid-stream ("terminated", premature close). Ours to report as 502, not 500.
  if (!(error instanceof sdk.APIError)) return unreadableAnswer(provider, midStream);
  const e = error as unknown as SdkApiError;
  const failure = error as object;
  if (midStream) return brokenStream(target, e.message);
  if (failure instanceof sdk.APIConnectionTimeoutError) return upstreamTimeout(provider);
  if (failure instanceof sdk.APIConnectionError || typeof e.status !== "number") return upstreamUnreachable(provider);
  // OpenAI's body is {error: {...}} (the SDK hands us the inner object); Anthropic's is {type: "error", error: {...}}.
  const body = e.error?.error ?? e.error;
  return new UpstreamError(provider, e.status, cleanUpstreamText(target, body?.message ?? e.message), {
    type: body?.type,
    code: e.error?.code ?? null,
    param: e.error?.param ?? null,
    retryAfter: e.headers?.get("retry-after") ?? undefined,
  });
}

/** fetch's own abort (the SDKs wrap most, not all, in APIUserAbortError). */
function isAbortError(error: unknown): boolean {
  return error instanceof Error && error.name === "AbortError";
}
