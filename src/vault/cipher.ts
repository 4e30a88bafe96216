import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import type { MasterKey } from "./master-keys";

const FORMAT = "v1";
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** Raised for every decryption failure alike: which part was wrong would help an attacker, not a user. */
export class EncryptionError extends Error {
  constructor() {
    super("Encryption error");
    this.name = "EncryptionError";
  }
}

/** `v1:<key id>:<base64 nonce | ciphertext | tag>`, AES-256-GCM with a fresh random 96-bit nonce. */
export function encrypt(plaintext: string, aad: string, masterKey: MasterKey): string {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv("aes-256-gcm", masterKey.key, nonce);
  cipher.setAAD(Buffer.from(aad, "utf8"));
  const ciphertext = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  const sealed = Buffer.concat([nonce, ciphertext, cipher.getAuthTag()]).toString("base64");
  return `${FORMAT}:${masterKey.id}:${sealed}`;
}

export function keyIdOfSealed(sealed: string): string | undefined {
  const [format, keyId] = sealed.split(":", 3);
  return format === FORMAT ? keyId : undefined;
}

export function decrypt(sealed: string, aad: string, keys: ReadonlyMap<string, MasterKey>): string {
  const [format, keyId, body] = sealed.split(":", 3);
  const masterKey = format === FORMAT && keyId ? keys.get(keyId) : undefined;
  if (!masterKey || !body) throw new EncryptionError();
  const bytes = Buffer.from(body, "base64");
  if (bytes.length < NONCE_BYTES + TAG_BYTES) throw new EncryptionError();
  try {
    const decipher = createDecipheriv("aes-256-gcm", masterKey.key, bytes.subarray(0, NONCE_BYTES), {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(Buffer.from(aad, "utf8"));
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
    return Buffer.concat([
      decipher.update(bytes.subarray(NONCE_BYTES, bytes.length - TAG_BYTES)),
      decipher.final(),
    ]).toString("utf8");
  } catch {
    throw new EncryptionError();
  }
}
