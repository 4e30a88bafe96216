import { Writable } from "node:stream";
import { createLogger, flushRequestLines, type Logger } from "../../src/log";

/** A real logger whose output lines are kept in memory, so tests can assert on what would be printed. */
export function captureLogger(level = "debug"): { logger: Logger; lines: string[]; text: () => string } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
      callback();
    },
  });
  const logger = createLogger({ level, format: "json", stream });
  // What would be printed by now: request lines still waiting to be written together included.
  const text = () => {
    flushRequestLines();
    return lines.join("\n");
  };
  return { logger, lines, text };
}
