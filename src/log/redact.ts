/**
 * Removes credentials from anything about to be logged: values under secret-looking keys, bearer tokens and
 * API-key-shaped strings anywhere in text (messages, error stacks, nested objects).
 */

export const REDACTED = "[REDACTED]";

// Keys compared after lower-casing and dropping "-" and "_", so api_key, apiKey and X-Api-Key all match.
const SECRET_KEY = /(keys?|token|secret|password|passwd|authorization|cookie|credential|jwt|hash|ciphertext)$/;
const SECRET_KEY_ANYWHERE = /(secret|password)/;
// Usage counters such as prompt_tokens are numbers worth keeping.
const NOT_SECRET_KEY = /(tokens|tokenizer|keys?count)$/;

const SECRET_TEXT: Array<[RegExp, string]> = [
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, `$1 ${REDACTED}`],
  [/\bsk-[A-Za-z0-9_-]{8,}/g, REDACTED], // OpenAI, Anthropic (sk-ant-) and Perpetual (sk-perp-) keys
  [/\b(gsk|xai|pk|rk)_[A-Za-z0-9]{16,}/g, REDACTED], // Groq and other vendors' key formats
  [/\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/g, REDACTED], // JWTs
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^:/?#\s@]*:)[^@\s/]+@/gi, `$1${REDACTED}@`], // passwords in URLs
];

// Every pattern above needs one of these: most logged strings (ids, paths, messages) have none and are returned
// after one scan instead of five.
const MAY_HOLD_SECRET = /bearer|basic|sk-|(?:gsk|xai|pk|rk)_|eyJ|:\/\//i;

// Log lines reuse a few dozen field names: each is classified once (bounded, in case a line carries arbitrary keys).
const keyVerdicts = new Map<string, boolean>();
const MAX_KEY_VERDICTS = 1_000;

export function isSecretKey(key: string): boolean {
  const known = keyVerdicts.get(key);
  if (known !== undefined) return known;
  const k = key.toLowerCase().replace(/[-_\s]/g, "");
  const secret = !NOT_SECRET_KEY.test(k) && (SECRET_KEY.test(k) || SECRET_KEY_ANYWHERE.test(k));
  if (keyVerdicts.size < MAX_KEY_VERDICTS) keyVerdicts.set(key, secret);
  return secret;
}

export function redactText(text: string): string {
  if (!MAY_HOLD_SECRET.test(text)) return text;
  let out = text;
  for (const [pattern, replacement] of SECRET_TEXT) out = out.replace(pattern, replacement);
  return out;
}

// The shortest run of a known secret that counts as leaking it: long enough not to hit ordinary words.
const SECRET_SLICE = 8;

/**
 * Removes a known secret (e.g. the provider key a request was sent with) from text, whatever its format: the whole
 * value and any run of at least 8 of its characters (a vendor echoing "sk-***abcd1234…" or a truncated key).
 */
export function redactSecret(text: string, secret: string): string {
  if (secret.length < SECRET_SLICE || text.length < SECRET_SLICE) return text;
  let out = "";
  let i = 0;
  while (i < text.length) {
    let end = i + SECRET_SLICE;
    if (end <= text.length && secret.includes(text.slice(i, end))) {
      while (end < text.length && secret.includes(text.slice(i, end + 1))) end++;
      out += REDACTED;
      i = end;
    } else {
      out += text[i];
      i++;
    }
  }
  return out;
}

/** Returns a redacted deep copy; the input is never modified. Cycles and depth are bounded. */
export function redact(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value === "string") return redactText(value);
  if (value === null || typeof value !== "object") return value;
  if (seen.has(value)) return "[Circular]";
  if (depth > 12) return "[Truncated]";
  seen.add(value);
  if (Array.isArray(value)) return value.map((item) => redact(item, depth + 1, seen));
  if (value instanceof Error) {
    const plain: Record<string, unknown> = { name: value.name, message: value.message, stack: value.stack };
    for (const [k, v] of Object.entries(value)) plain[k] = v;
    return redactEntries(plain, depth, seen);
  }
  if (value instanceof Date) return value.toISOString();
  return redactEntries(value as Record<string, unknown>, depth, seen);
}

function redactEntries(obj: Record<string, unknown>, depth: number, seen: WeakSet<object>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    out[k] = isSecretKey(k) && v !== null && v !== undefined && v !== "" ? REDACTED : redact(v, depth + 1, seen);
  }
  return out;
}
