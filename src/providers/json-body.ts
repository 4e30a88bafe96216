import { randomBytes } from "node:crypto";

/** Strings at least this long are serialized in slices, with the event loop free between them. */
const LONG_STRING = 256 * 1024;
const SLICE = 512 * 1024;

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A request body as JSON bytes for a provider call. Ordinary bodies are one JSON.stringify. A body holding very long
 * strings (a pasted 9 MB document) is serialized in slices with the event loop free between them: one
 * JSON.stringify of 9 MB held every other request (and /health) for ~50 ms on this machine (docs/PROXY.md). The
 * bytes are the same as JSON.stringify's: JSON.stringify serializes the body with each long string replaced by a
 * placeholder, and each placeholder's place is filled with that string serialized slice by slice (escaping is per
 * character, so the slices' escapes concatenate to the whole string's).
 */
export async function jsonBody(body: unknown): Promise<string | Buffer> {
  if (!holdsLongString(body)) return JSON.stringify(body); // V8's fast path: no replacer
  const long: string[] = [];
  const nonce = randomBytes(8).toString("hex");
  const text = JSON.stringify(body, (_key, value: unknown) => {
    if (typeof value !== "string" || value.length < LONG_STRING) return value;
    long.push(value);
    return `\u0000${nonce}:${long.length - 1}\u0000`;
  });
  if (long.length === 0) return text;
  const parts: Buffer[] = [];
  let rest = text;
  for (let i = 0; i < long.length; i++) {
    const placeholder = JSON.stringify(`\u0000${nonce}:${i}\u0000`);
    const at = rest.indexOf(placeholder);
    parts.push(Buffer.from(rest.slice(0, at)), Buffer.from('"'));
    const value = long[i]!;
    for (let from = 0; from < value.length; ) {
      await yieldToEventLoop();
      let to = Math.min(value.length, from + SLICE);
      // A surrogate pair stays in one slice: split, each half would be escaped on its own (same string, other bytes).
      if (to < value.length && isHighSurrogate(value.charCodeAt(to - 1))) to--;
      parts.push(Buffer.from(JSON.stringify(value.slice(from, to)).slice(1, -1)));
      from = to;
    }
    parts.push(Buffer.from('"'));
    rest = rest.slice(at + placeholder.length);
  }
  parts.push(Buffer.from(rest));
  return Buffer.concat(parts);
}

/** Whether any string in the value is LONG_STRING or longer: a walk over the values, far cheaper than serializing. */
function holdsLongString(value: unknown): boolean {
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const next = pending.pop();
    if (typeof next === "string") {
      if (next.length >= LONG_STRING) return true;
    } else if (Array.isArray(next)) {
      for (const item of next) pending.push(item);
    } else if (typeof next === "object" && next !== null) {
      for (const key in next) pending.push((next as Record<string, unknown>)[key]);
    }
  }
  return false;
}
