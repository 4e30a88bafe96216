import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../config";
import type { Logger } from "../log";
import { decrypt, encrypt } from "./cipher";
import { type MasterKey, MasterKeyError, parseMasterKey } from "./master-keys";

export { EncryptionError, keyIdOfSealed } from "./cipher";
export { countByMasterKey, type RotationReport, rotateProviderKeys } from "./rotate";

/**
 * Seals and opens users' provider keys. The only holder of the master keys; a decrypted key is returned to the
 * caller that makes the provider call and goes nowhere else.
 */
export interface Vault {
  readonly currentKeyId: string;
  seal(userId: string, provider: string, apiKey: string): string;
  /** Throws EncryptionError ("Encryption error") when the value was tampered with, moved, or its key is gone. */
  open(userId: string, provider: string, sealed: string): string;
  /** Whether a master key id (the second field of a sealed value) is the current key, a previous one, or unknown. */
  keyStateOf(keyId: string): MasterKeyState;
}

export type MasterKeyState = "current" | "previous" | "unknown";

// Binding the ciphertext to its owner and provider: a value copied to another row fails to decrypt.
const aadFor = (userId: string, provider: string) => `perpetual/provider-key/${userId}/${provider}`;

export function createVault(current: MasterKey, previous: MasterKey[] = []): Vault {
  const keys = new Map<string, MasterKey>(previous.map((k) => [k.id, k]));
  keys.set(current.id, current);
  return {
    currentKeyId: current.id,
    seal: (userId, provider, apiKey) => encrypt(apiKey, aadFor(userId, provider), current),
    open: (userId, provider, sealed) => decrypt(sealed, aadFor(userId, provider), keys),
    keyStateOf: (keyId) => (keyId === current.id ? "current" : keys.has(keyId) ? "previous" : "unknown"),
  };
}

/** The master keys as the environment gives them (their format was checked with the rest of the configuration). */
export interface VaultKeys {
  currentKey?: string;
  previousKeys: string[];
}

/**
 * Reads API_KEY_ENCRYPTION_KEY and API_KEY_ENCRYPTION_KEYS_PREVIOUS. Only the vault reads them: they are not part
 * of `Config`, which the web layer receives.
 */
export function vaultKeysFrom(env: NodeJS.ProcessEnv): VaultKeys {
  return {
    currentKey: env.API_KEY_ENCRYPTION_KEY?.trim() || undefined,
    previousKeys: (env.API_KEY_ENCRYPTION_KEYS_PREVIOUS ?? "")
      .split(",")
      .map((k) => k.trim())
      .filter(Boolean),
  };
}

export interface VaultSettings extends VaultKeys {
  /** Embedded mode may generate its own key; with an external database a missing key is an error. */
  embedded: boolean;
  dataDir: string;
}

const EMBEDDED_KEY_FILE = "vault.key";

/** Reads the configured master keys (or, embedded, the generated one). Problems are reported as a ConfigError. */
export function openVault(settings: VaultSettings, logger: Logger): Vault {
  const problems: string[] = [];
  const parse = (text: string, name: string) => {
    try {
      return parseMasterKey(text, name);
    } catch (error) {
      if (error instanceof MasterKeyError) problems.push(error.message);
      else throw error;
      return undefined;
    }
  };
  const previous = settings.previousKeys.map((k, i) => parse(k, `API_KEY_ENCRYPTION_KEYS_PREVIOUS[${i}]`));
  let current: MasterKey | undefined;
  if (settings.currentKey) current = parse(settings.currentKey, "API_KEY_ENCRYPTION_KEY");
  else if (settings.embedded) current = parse(embeddedKey(settings.dataDir, logger), `${EMBEDDED_KEY_FILE}`);
  else
    problems.push("API_KEY_ENCRYPTION_KEY: required when DATABASE_URL is set (generate one: openssl rand -base64 32)");
  if (problems.length > 0 || !current) throw new ConfigError(problems);
  return createVault(
    current,
    previous.filter((k): k is MasterKey => k !== undefined),
  );
}

function embeddedKey(dataDir: string, logger: Logger): string {
  const path = join(dataDir, EMBEDDED_KEY_FILE);
  if (existsSync(path)) return readFileSync(path, "utf8");
  mkdirSync(dataDir, { recursive: true });
  const key = randomBytes(32).toString("base64");
  writeFileSync(path, `${key}\n`, { mode: 0o600, flag: "wx" });
  chmodSync(path, 0o600);
  logger.warn("generated a vault master key for the embedded database; back it up with the data directory", { path });
  return key;
}
