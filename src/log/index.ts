import { AsyncLocalStorage } from "node:async_hooks";
import winston from "winston";
import { redact } from "./redact";

export { isSecretKey, REDACTED, redact, redactSecret, redactText } from "./redact";

export type Logger = winston.Logger;

export interface LoggerOptions {
  level: string;
  format: "json" | "pretty";
  /** Tests capture output here; production writes to stdout. */
  stream?: NodeJS.WritableStream;
}

/** Per-request fields (request id, user id) added to every line logged while that request is handled. */
const logContext = new AsyncLocalStorage<Record<string, unknown>>();

export function withLogContext<T>(fields: Record<string, unknown>, fn: () => T): T {
  return logContext.run(fields, fn);
}

/** Adds a field to the current request's log context (e.g. the user id once authenticated). */
export function addLogContext(fields: Record<string, unknown>): void {
  const current = logContext.getStore();
  if (current) Object.assign(current, fields);
}

const SYMBOLS = [Symbol.for("level"), Symbol.for("message"), Symbol.for("splat")] as const;

// Runs last before output: everything on the line, including error stacks and nested metadata, is redacted.
const redaction = winston.format((info) => {
  const context = logContext.getStore();
  const merged: Record<string, unknown> = { ...context, ...info };
  const clean = redact(merged) as Record<string | symbol, unknown>;
  for (const symbol of SYMBOLS) clean[symbol] = (info as Record<symbol, unknown>)[symbol];
  return clean as winston.Logform.TransformableInfo;
});

/**
 * Where each logger's request lines go without winston's stream pipeline (see logRequest): formatting the one line
 * per request through it took 6-7 % of the server's CPU at a thousand requests a second.
 */
const requestLines = new WeakMap<Logger, RequestLines>();

/** How long request lines may wait to be written together: at most this late, or sooner once FLUSH_BYTES pile up. */
const REQUEST_LINES_FLUSH_MS = 20;
const FLUSH_BYTES = 64 * 1024;

/**
 * Request lines written in pieces of up to REQUEST_LINES_FLUSH_MS: stdout to a pipe writes synchronously, and a write
 * per event-loop turn was still about one syscall per request under load. Flushed at exit too.
 */
class RequestLines {
  private pending = "";
  private static readonly unflushed = new Set<RequestLines>();
  private static timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly format: LoggerOptions["format"],
  ) {}

  add(fields: Record<string, unknown>): void {
    const timestamp = new Date().toISOString();
    const clean = redact(fields) as Record<string, unknown>;
    this.pending +=
      this.format === "json"
        ? `${JSON.stringify({ level: "info", message: "request", ...clean, timestamp })}\n`
        : `${timestamp} info request ${JSON.stringify(clean)}\n`;
    RequestLines.unflushed.add(this);
    if (this.pending.length >= FLUSH_BYTES) RequestLines.flushAll();
    else RequestLines.timer ??= setTimeout(RequestLines.flushAll, REQUEST_LINES_FLUSH_MS).unref();
  }

  static flushAll(): void {
    clearTimeout(RequestLines.timer);
    RequestLines.timer = undefined;
    for (const lines of RequestLines.unflushed) {
      lines.out.write(lines.pending);
      lines.pending = "";
    }
    RequestLines.unflushed.clear();
  }
}
process.on("exit", RequestLines.flushAll);

/** Writes the request lines still waiting (they are otherwise written within REQUEST_LINES_FLUSH_MS). */
export function flushRequestLines(): void {
  RequestLines.flushAll();
}

/**
 * The access log's line for a request (message "request"), with the request's own fields: the same line as
 * `logger.info("request", fields)` (level, format, redaction), written faster. Any logger works; one made by
 * createLogger takes the fast path.
 */
export function logRequest(logger: Logger, fields: Record<string, unknown>): void {
  const lines = requestLines.get(logger);
  if (!lines) logger.info("request", fields);
  else if (logger.isInfoEnabled()) lines.add({ ...logContext.getStore(), ...fields });
}

export function createLogger(options: LoggerOptions): Logger {
  const base = [winston.format.errors({ stack: true }), winston.format.timestamp(), redaction()];
  const output =
    options.format === "json"
      ? winston.format.json()
      : winston.format.printf(({ timestamp, level, message, ...rest }) => {
          const extra = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : "";
          return `${String(timestamp)} ${level} ${String(message)}${extra}`;
        });
  const transport = options.stream
    ? new winston.transports.Stream({ stream: options.stream })
    : new winston.transports.Console();
  const logger = winston.createLogger({
    level: options.level,
    format: winston.format.combine(...base, output),
    transports: [transport],
  });
  requestLines.set(logger, new RequestLines(options.stream ?? process.stdout, options.format));
  return logger;
}
