import type { Server } from "node:http";
import type { Express } from "express";
import type { Logger } from "./log";

export interface RunningServer {
  server: Server;
  port: number;
  /** Stops accepting connections, lets in-flight requests finish (up to the timeout), then resolves. */
  drain(timeoutMs: number): Promise<void>;
}

const LISTEN_BACKLOG = 4096;

export function listen(
  app: Express,
  options: { host: string; port: number; requestTimeoutMs: number },
): Promise<RunningServer> {
  return new Promise((resolve, reject) => {
    // A burst of new connections (thousands of streams opened at once) waits in the accept queue instead of being
    // refused: Node's default backlog is 511; the kernel caps this at net.core.somaxconn.
    const server = app.listen({ port: options.port, host: options.host, backlog: LISTEN_BACKLOG });
    server.requestTimeout = options.requestTimeoutMs;
    server.once("error", reject);
    server.once("listening", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : options.port;
      resolve({ server, port, drain: (timeoutMs) => drain(server, timeoutMs) });
    });
  });
}

function drain(server: Server, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    // Keep-alive sockets hold close() open: close each one as soon as its last response is done.
    const closeIdle = setInterval(() => server.closeIdleConnections(), 50);
    const forceTimer = setTimeout(() => server.closeAllConnections(), timeoutMs);
    server.close(() => {
      clearInterval(closeIdle);
      clearTimeout(forceTimer);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/** SIGTERM/SIGINT run `shutdown` once; a second signal exits at once. */
export function onShutdownSignal(logger: Logger, shutdown: () => Promise<void>): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn("second signal, exiting now", { signal });
      process.exit(1);
    }
    stopping = true;
    logger.info("shutting down", { signal });
    shutdown().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error("shutdown failed", { error });
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", handle);
  process.on("SIGINT", handle);
}
