import type { Database } from "./types";

/**
 * How a database error should be treated. Connection-level failures (server gone, connection terminated, pool
 * timeout) are temporary: the work is retried later and clients get 503. Data errors (SQLSTATE class 22 data
 * exception, 23 integrity violation, 54 program limit) belong to the statement's input: retrying cannot help.
 */
const UNAVAILABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "57P01", // admin_shutdown: pg_terminate_backend, a failover
  "57P02",
  "57P03",
  "08000",
  "08001",
  "08003",
  "08006",
  "53300", // too_many_connections
]);

const UNAVAILABLE_MESSAGE =
  /Connection terminated|connection timeout|PGlite is closed|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end/;

function errorFields(error: unknown): { code?: unknown; message?: unknown } {
  return typeof error === "object" && error !== null ? (error as { code?: unknown; message?: unknown }) : {};
}

/** The database could not be reached or dropped the connection: temporary, so the caller may retry (HTTP 503). */
export class DatabaseUnavailableError extends Error {
  constructor(cause: unknown) {
    super("The database is unavailable.", { cause });
    this.name = "DatabaseUnavailableError";
  }
}

export function isDatabaseUnavailable(error: unknown): boolean {
  if (error instanceof DatabaseUnavailableError) return true;
  const { code, message } = errorFields(error);
  return (
    (typeof code === "string" && UNAVAILABLE_CODES.has(code)) ||
    (typeof message === "string" && UNAVAILABLE_MESSAGE.test(message))
  );
}

/** True when the statement's own input made it fail (a NUL byte, a value out of range): retrying cannot help. */
export function isDataError(error: unknown): boolean {
  const { code } = errorFields(error);
  return typeof code === "string" && /^(22|23|54)[0-9A-Z]{3}$/.test(code);
}

/**
 * The adapter as its callers see it: a connection-level failure surfaces as a DatabaseUnavailableError, so no
 * layer above the database reads driver codes or messages. Data errors pass through unchanged.
 */
export function raisingUnavailable(db: Database): Database {
  const classify = (error: unknown) => (isDatabaseUnavailable(error) ? new DatabaseUnavailableError(error) : error);
  const guarded =
    <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      try {
        return await fn(...args);
      } catch (error) {
        throw classify(error);
      }
    };
  return {
    kind: db.kind,
    query: guarded(db.query.bind(db)) as Database["query"],
    exec: guarded(db.exec.bind(db)),
    transaction: guarded(db.transaction.bind(db)) as Database["transaction"],
    asUser: guarded(db.asUser.bind(db)) as Database["asUser"],
    close: () => db.close(),
  };
}
