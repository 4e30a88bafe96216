import { join } from "node:path";
import { TextDecoder } from "node:util";
import { ThreadClient } from "../threads";

/**
 * Past this size a JSON text is decoded and parsed in a thread of its own: JSON.parse of a 9 MB request or answer
 * held the event loop 30–60 ms (docs/PROXY.md). What comes back is copied in by structured clone, which for chat
 * bodies (few large strings) costs a few milliseconds. Below it the thread's round trip costs more than it saves.
 */
export const OFF_THREAD_BYTES = 1 << 20;

export interface ParseRequest {
  /** Either the bytes (transferred, decoded there) or a text (copied). */
  bytes?: Uint8Array;
  encoding?: string;
  text?: string;
}

/**
 * JSON.parse, in the JSON thread for texts past OFF_THREAD_BYTES: a SyntaxError for invalid JSON either way. Bytes
 * are decoded with `encoding` (a WHATWG label: utf-8, utf-16le, utf-16be) and handed over without a copy.
 */
export function parseJson(source: string | Uint8Array, encoding = "utf-8"): Promise<unknown> {
  if (source.length < OFF_THREAD_BYTES) {
    try {
      const text = typeof source === "string" ? source : decoderFor(encoding)!.decode(source);
      return Promise.resolve(JSON.parse(text));
    } catch (error) {
      return Promise.reject(error);
    }
  }
  return parseInThread(source, encoding);
}

const decoders = new Map<string, TextDecoder | undefined>();

/**
 * The decoder for a charset label (strips a byte-order mark, as body-parser does), or undefined when this runtime
 * has none. One per label, reused: bodies are decoded on every request.
 */
export function decoderFor(label: string): TextDecoder | undefined {
  if (!decoders.has(label)) {
    let decoder: TextDecoder | undefined;
    try {
      decoder = new TextDecoder(label);
    } catch {}
    if (decoders.size < 64) decoders.set(label, decoder); // labels come from clients: the cache is bounded
    return decoder;
  }
  return decoders.get(label);
}

const jsonThread = new ThreadClient({
  modulePath: join(__dirname, "worker"),
  name: "JSON thread",
  errorOf: (reply) => new SyntaxError(reply.message),
});

function parseInThread(source: string | Uint8Array, encoding: string): Promise<unknown> {
  if (typeof source === "string") return jsonThread.call({ text: source } satisfies ParseRequest);
  // Transferred when the bytes are the whole of their buffer (a concatenated body is); copied otherwise.
  const own = source.byteOffset === 0 && source.byteLength === source.buffer.byteLength;
  const bytes = own ? source : source.slice();
  return jsonThread.call({ bytes, encoding } satisfies ParseRequest, [bytes.buffer as ArrayBuffer]);
}
