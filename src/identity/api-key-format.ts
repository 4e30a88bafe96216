import { createHash, randomBytes } from "node:crypto";

export const API_KEY_PREFIX = "sk-perp-";
const BODY_LENGTH = 40; // 40 base62 characters: about 238 bits of randomness
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const API_KEY_SHAPE = new RegExp(`^${API_KEY_PREFIX}[0-9A-Za-z]{${BODY_LENGTH}}$`);

export interface NewApiKey {
  /** Shown to the caller exactly once, never stored. */
  key: string;
  hash: string;
  prefix: string;
  last4: string;
}

export function looksLikeApiKey(token: string): boolean {
  return token.startsWith(API_KEY_PREFIX);
}

export function isWellFormedApiKey(token: string): boolean {
  return API_KEY_SHAPE.test(token);
}

/** SHA-256 suffices: the keys are long random strings, so there is nothing to brute-force a slow hash against. */
export function hashApiKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

export function generateApiKey(): NewApiKey {
  let body = "";
  while (body.length < BODY_LENGTH) {
    for (const byte of randomBytes(BODY_LENGTH)) {
      // 248 = 4 * 62: dropping larger bytes keeps every character equally likely.
      if (byte < 248 && body.length < BODY_LENGTH) body += BASE62[byte % 62];
    }
  }
  const key = `${API_KEY_PREFIX}${body}`;
  return { key, hash: hashApiKey(key), prefix: key.slice(0, API_KEY_PREFIX.length + 4), last4: key.slice(-4) };
}

export function maskedApiKey(prefix: string, last4: string): string {
  return `${prefix}…${last4}`;
}
