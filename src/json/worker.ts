import { parentPort } from "node:worker_threads";
import type { ThreadReply } from "../threads";
import type { ParseRequest } from "./parse";

/** The JSON thread: decodes and parses what it is sent, in arrival order, and posts the value back. */
const port = parentPort!;
port.on("message", ({ id, bytes, text, encoding }: ParseRequest & { id: number }) => {
  let reply: ThreadReply;
  try {
    const source = text ?? new TextDecoder(encoding, { fatal: false }).decode(bytes);
    reply = { id, ok: true, value: JSON.parse(source) };
  } catch (error) {
    reply = { id, ok: false, name: "SyntaxError", message: error instanceof Error ? error.message : String(error) };
  }
  port.postMessage(reply);
});
