import { Agent, type Dispatcher, errors } from "undici";
import { brokenStream, cleanUpstreamText, unreadableAnswer, upstreamTimeout, upstreamUnreachable } from "../errors";
import { jsonBody } from "../json-body";
import { type CallOptions, type CallTarget, UpstreamError } from "../types";
import { parseWire, withWireText } from "../wire";

/**
 * The OpenAI wire protocol over undici's pooled `request`: one keep-alive pool per upstream origin, the user's key in
 * each request's headers only. Measured against the openai SDK's fetch path (web streams, Request/Response/Headers
 * objects per call), this path raised the proxy's throughput by about half (docs/PROXY.md). Failures are reported as
 * the SDK path reported them: the provider's status, message, type, code, param and retry-after, the key redacted.
 */
const dispatcher = new Agent({ keepAliveTimeout: 10_000, connections: 256, pipelining: 1 });

const USER_AGENT = "perpetual";

/** How long a stream's response may take to end after its `[DONE]` before the connection is cut, not reused. */
const END_AFTER_DONE_MS = 1_000;

interface Exchange {
  target: CallTarget;
  path: string;
  body: unknown;
  options: CallOptions;
  accept: "application/json" | "text/event-stream";
}

/** POSTs JSON and returns the parsed JSON answer; every failure is an UpstreamError (aborts pass through). */
export async function postJson<T>(target: CallTarget, path: string, body: unknown, options: CallOptions): Promise<T> {
  const answer = await send({ target, path, body, options, accept: "application/json" });
  let text: string;
  try {
    text = await answer.body.text();
  } catch (error) {
    throw failure(target, error, options, "body");
  }
  try {
    return await parseWire<T>(text);
  } catch {
    throw unreadableAnswer(target.provider, false);
  }
}

/**
 * POSTs a streaming request; resolves once the provider has accepted it (failures before the first byte reject
 * here) with the parsed `data:` events up to `[DONE]`. An event carrying `error`, a cut connection or unreadable
 * data ends the stream with an `upstream_stream_error`; the caller leaving (signal aborted) ends it quietly.
 */
export async function postStream<T>(
  target: CallTarget,
  path: string,
  body: unknown,
  options: CallOptions,
): Promise<AsyncIterable<T>> {
  const answer = await send({ target, path, body, options, accept: "text/event-stream" });
  return events<T>(target, answer.body, options);
}

async function send(exchange: Exchange): Promise<Dispatcher.ResponseData> {
  const { target, options } = exchange;
  const url = new URL(`${target.baseUrl.replace(/\/+$/, "")}${exchange.path}`);
  let answer: Dispatcher.ResponseData;
  try {
    answer = await dispatcher.request({
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: exchange.accept,
        "user-agent": USER_AGENT,
        authorization: `Bearer ${target.apiKey || "none"}`,
      },
      body: await jsonBody(exchange.body),
      signal: options.signal,
      // As with the SDK's `timeout`: how long the provider may take to start answering, and (here) to go silent.
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
    });
  } catch (error) {
    throw failure(target, error, options, "connect");
  }
  if (answer.statusCode >= 200 && answer.statusCode < 300) return answer;
  let text = "";
  try {
    text = await answer.body.text();
  } catch {
    // The status says enough.
  }
  throw statusError(target, answer.statusCode, text, answer.headers["retry-after"]);
}

/** The provider's refusal, as the SDK path reported it: OpenAI's `{error: {...}}`, Anthropic-style `{type, error}`
 * or plain text, with the call's key and anything key-shaped removed. */
function statusError(
  target: CallTarget,
  status: number,
  text: string,
  retryAfter: string | string[] | undefined,
): UpstreamError {
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  const outer = (parsed as { error?: unknown } | undefined)?.error;
  const inner = typeof outer === "object" && outer !== null ? (outer as Record<string, unknown>) : undefined;
  const nested = inner?.error && typeof inner.error === "object" ? (inner.error as Record<string, unknown>) : inner;
  const message =
    typeof nested?.message === "string"
      ? nested.message
      : typeof outer === "string"
        ? outer
        : `${status} ${text || "status code (no body)"}`;
  return new UpstreamError(target.provider, status, cleanUpstreamText(target, message), {
    type: typeof nested?.type === "string" ? nested.type : undefined,
    code: typeof inner?.code === "string" ? inner.code : null,
    param: typeof inner?.param === "string" ? inner.param : null,
    retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
  });
}

async function* events<T>(target: CallTarget, body: Dispatcher.ResponseData["body"], options: CallOptions) {
  body.setEncoding("utf8");
  let pending = "";
  let data: string[] = [];
  let done = false;
  try {
    // Not destroyed on return: leaving at [DONE] must not cost an AbortError (and its stack trace) per stream.
    for await (const piece of body.iterator({ destroyOnReturn: false }) as AsyncIterable<string>) {
      pending += piece;
      let newline = pending.indexOf("\n");
      while (newline >= 0) {
        const line = pending.charCodeAt(newline - 1) === 13 ? pending.slice(0, newline - 1) : pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        newline = pending.indexOf("\n");
        if (line === "") {
          // A blank line dispatches the event (SSE): its data lines joined by newlines.
          if (data.length === 0) continue;
          const payload = data.join("\n");
          data = [];
          if (payload === "[DONE]") {
            done = true;
            return;
          }
          yield parseEvent<T>(target, payload);
        } else if (line.startsWith("data:")) {
          data.push(line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5));
        }
        // event:, id:, retry: and comments carry nothing the OpenAI protocol uses.
      }
    }
  } catch (error) {
    if (options.signal.aborted) return;
    throw failure(target, error, options, "stream");
  } finally {
    // Whatever the body reports from here on is moot: the stream is over for its reader.
    body.on("error", () => {});
    if (done && !body.readableEnded) {
      // What follows [DONE] is the response's end: read it so the connection goes back to the pool. A provider that
      // keeps the response open after it has the connection cut, so that it does not hold a pool slot.
      const cut = setTimeout(() => body.destroy(), END_AFTER_DONE_MS).unref();
      body.once("close", () => clearTimeout(cut));
      body.resume();
    } else if (!body.destroyed) {
      // Stopped early (the caller left, or the pipeline failed): release the connection rather than read the rest.
      body.destroy();
    }
  }
  if (options.signal.aborted) return;
  // Ended without [DONE]: whatever complete event is left, then done (as the SDK path did).
  if (data.length > 0) {
    const payload = data.join("\n");
    if (payload !== "[DONE]") yield parseEvent<T>(target, payload);
  }
}

function parseEvent<T>(target: CallTarget, payload: string): T {
  let event: unknown;
  try {
    event = JSON.parse(payload);
  } catch {
    throw unreadableAnswer(target.provider, true);
  }
  const error = (event as { error?: { message?: unknown } } | null)?.error;
  if (error) throw brokenStream(target, typeof error.message === "string" ? error.message : JSON.stringify(error));
  // Relayed unchanged (most are), the event is sent as the provider wrote it rather than serialized again.
  return withWireText(event as T, payload);
}

/**
 * A transport failure, by where it happened: the caller's abort passes through; a timeout is `upstream_timeout`; no
 * answer at all is `upstream_unreachable`; a connection lost once the provider had answered is its protocol failing
 * (502 `upstream_error`, or `upstream_stream_error` mid-stream).
 */
function failure(
  target: CallTarget,
  error: unknown,
  options: CallOptions,
  phase: "connect" | "body" | "stream",
): unknown {
  if (options.signal.aborted || error instanceof errors.RequestAbortedError || error instanceof UpstreamError) {
    return error;
  }
  if (phase === "stream") return unreadableAnswer(target.provider, true);
  if (error instanceof errors.HeadersTimeoutError || error instanceof errors.BodyTimeoutError) {
    return upstreamTimeout(target.provider);
  }
  if (phase === "body") return unreadableAnswer(target.provider, false);
  return upstreamUnreachable(target.provider);
}
