import { chmodSync, rmSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Logger } from "../log";
import type { Output, ServerContext } from "./commands";

/**
 * The embedded database belongs to one process. While the server holds it, the CLI runs its commands inside the
 * server instead, through a Unix socket in DATA_DIR (mode 0600: whoever may use it may read the database files
 * anyway): same commands, same output, no restart. One JSON line asks (`{"argv": [...]}`); JSON lines answer
 * (`{"out": line}`, `{"err": line}`) and the last one carries the exit code (`{"exit": n}`).
 */
export const cliSocketPath = (dataDir: string) => join(dataDir, "cli.sock");

type RunCli = (argv: string[], io: Output, server: ServerContext) => Promise<number>;

/** Serves CLI commands against the server's own database and caches; resolves with a function that stops serving. */
export async function serveCli(
  dataDir: string,
  context: ServerContext,
  run: RunCli,
  logger: Logger,
): Promise<() => Promise<void>> {
  const path = cliSocketPath(dataDir);
  // A socket file left by a process that died refuses connections; it is replaced (the database lock, taken
  // before this, already proves no other server runs on this DATA_DIR).
  rmSync(path, { force: true });
  const connections = new Set<Socket>();
  const server = createServer((socket) => {
    connections.add(socket);
    socket.on("close", () => connections.delete(socket));
    socket.on("error", () => {});
    const lines = createInterface({ input: socket });
    lines.once("line", async (line) => {
      lines.close();
      const send = (message: object) => socket.write(`${JSON.stringify(message)}\n`);
      let exit = 1;
      try {
        const { argv } = JSON.parse(line) as { argv: unknown };
        if (!Array.isArray(argv) || !argv.every((a) => typeof a === "string")) throw new Error("argv must be strings");
        logger.info("cli command run in the server", { command: argv.filter((a) => !a.startsWith("-")).slice(0, 3) });
        exit = await run(argv, { out: (out) => send({ out }), err: (err) => send({ err }) }, context);
      } catch (error) {
        send({ err: `Error: ${error instanceof Error ? error.message : String(error)}` });
      }
      socket.end(`${JSON.stringify({ exit })}\n`);
    });
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => resolve());
    });
    chmodSync(path, 0o600);
  } catch (error) {
    // A path too long for a Unix socket, say: the server still serves; the CLI then asks to stop it.
    logger.warn("the CLI socket could not be opened; stop the server to use the CLI", { path, error });
    return async () => {};
  }
  return async () => {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const socket of connections) socket.destroy();
    });
    rmSync(path, { force: true });
  };
}

/**
 * Runs the command in the server that holds DATA_DIR, when one is listening on its socket. Resolves with the
 * command's exit code, or undefined when no server answers (the CLI then opens the database itself).
 */
export function runInServer(dataDir: string, argv: string[], io: Output): Promise<number | undefined> {
  return new Promise((resolve) => {
    const socket = connect(cliSocketPath(dataDir));
    let connected = false;
    let exit: number | undefined;
    socket.on("connect", () => {
      connected = true;
      // Read only once connected: readline re-emits a failed connect as an error of its own.
      createInterface({ input: socket }).on("line", (line) => {
        const message = JSON.parse(line) as { out?: string; err?: string; exit?: number };
        if (message.out !== undefined) io.out(message.out);
        if (message.err !== undefined) io.err(message.err);
        if (message.exit !== undefined) exit = message.exit;
      });
      socket.write(`${JSON.stringify({ argv })}\n`);
    });
    socket.on("error", (error: NodeJS.ErrnoException) => {
      if (!connected) resolve(undefined);
      else io.err(`Error: the server closed the connection (${error.code ?? error.message})`);
    });
    socket.on("close", () => {
      if (connected) resolve(exit ?? 1);
    });
  });
}
