import { createHash } from "node:crypto";

/** One master key and the short id stored beside every ciphertext it made. */
export interface MasterKey {
  id: string;
  key: Buffer;
}

export class MasterKeyError extends Error {}

const HEX_64 = /^[0-9a-fA-F]{64}$/;
const BASE64_32_BYTES = /^[A-Za-z0-9+/_-]{43}=?$/;

/**
 * Accepts 32 random bytes as 64 hex characters or base64/base64url (e.g. `openssl rand -base64 32`). Refuses
 * passphrases and patterned keys: a random 32-byte key has ~30 distinct byte values, a weak one far fewer.
 */
export function parseMasterKey(text: string, name: string): MasterKey {
  const trimmed = text.trim();
  let key: Buffer;
  if (HEX_64.test(trimmed)) key = Buffer.from(trimmed, "hex");
  else if (BASE64_32_BYTES.test(trimmed)) key = Buffer.from(trimmed.replace(/-/g, "+").replace(/_/g, "/"), "base64");
  else
    throw new MasterKeyError(
      `${name}: must be 32 random bytes as 64 hex characters or base64 (openssl rand -base64 32)`,
    );
  if (key.length !== 32) {
    throw new MasterKeyError(`${name}: must decode to exactly 32 bytes`);
  }
  if (new Set(key).size < 16) {
    throw new MasterKeyError(`${name}: looks weak (too few distinct bytes); generate one with openssl rand -base64 32`);
  }
  return { id: keyIdOf(key), key };
}

/** Derived from the key itself, so configuration never needs to name key ids and they cannot drift. */
function keyIdOf(key: Buffer): string {
  return createHash("sha256").update("perpetual-vault-key-id").update(key).digest("hex").slice(0, 12);
}
