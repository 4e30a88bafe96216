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
  return winston.createLogger({
    level: options.level,
    format: winston.format.combine(...base, output),
    transports: [transport],
  });
}
