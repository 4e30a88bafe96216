import { join } from "node:path";
import type { Worker } from "node:worker_threads";
import { startThread } from "../threads";

/**
 * Past this size a JSON text is decoded and parsed in a thread of its own: JSON.parse of a 9 MB request or answer
 * held the event loop 30–60 ms (docs/PROXY.md). What comes back is copied in by structured clone, which for chat
 * bodies (few large strings) costs a few milliseconds. Below it the thread's round trip costs more than it saves.
 */
export const OFF_THREAD_BYTES = 1 << 20;

export interface ParseRequest {
  id: number;
  /** Either the bytes (transferred, decoded there) or a text (copied). */
  bytes?: Uint8Array;
  encoding?: string;
  text?: string;
}

export type ParseReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; message: string };

/**
 * JSON.parse, in the JSON thread for texts past OFF_THREAD_BYTES: a SyntaxError for invalid JSON either way. Bytes
 * are decoded with `encoding` (a WHATWG label: utf-8, utf-16le, utf-16be) and handed over without a copy.
 */
export function parseJson(source: string | Uint8Array, encoding = "utf-8"): Promise<unknown> {
  if (source.length < OFF_THREAD_BYTES) {
    try {
      const text = typeof source === "string" ? source : new TextDecoder(encoding).decode(source);
      return Promise.resolve(JSON.parse(text));
    } catch (error) {
      return Promise.reject(error);
    }
  }
  return jsonThread.parse(source, encoding);
}

class JsonThread {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  private nextId = 1;

  parse(source: string | Uint8Array, encoding: string): Promise<unknown> {
    const worker = this.thread();
    const id = this.nextId++;
    // Referenced only while a parse is pending: an idle thread never keeps the process alive.
    if (this.pending.size === 0) worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (typeof source === "string") worker.postMessage({ id, text: source } satisfies ParseRequest);
      else {
        // Transferred when the bytes are the whole of their buffer (a concatenated body is); copied otherwise.
        const own = source.byteOffset === 0 && source.byteLength === source.buffer.byteLength;
        const bytes = own ? source : source.slice();
        worker.postMessage({ id, bytes, encoding } satisfies ParseRequest, [bytes.buffer as ArrayBuffer]);
      }
    });
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = startThread(join(__dirname, "worker"));
    worker.unref();
    worker.on("message", (reply: ParseReply) => {
      const waiting = this.pending.get(reply.id);
      if (!waiting) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      if (reply.ok) waiting.resolve(reply.value);
      else waiting.reject(new SyntaxError(reply.message));
    });
    const stopped = (error: Error) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      for (const waiting of this.pending.values()) waiting.reject(error);
      this.pending.clear();
    };
    worker.on("error", stopped);
    worker.on("exit", (code) => stopped(new Error(`the JSON thread stopped (exit code ${code})`)));
    this.worker = worker;
    return worker;
  }
}

const jsonThread = new JsonThread();
