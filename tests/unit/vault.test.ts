import { randomBytes } from "node:crypto";
import { mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../src/config";
import { createVault, EncryptionError, keyIdOfSealed, openVault } from "../../src/vault";
import { parseMasterKey } from "../../src/vault/master-keys";
import { captureLogger } from "../helpers/logs";

const newKey = () => parseMasterKey(randomBytes(32).toString("base64"), "test");
const USER_A = "6f1b0e4e-2a55-4c3e-9f53-1b7b2a0d9c11";
const USER_B = "0b5f8d3a-7c1e-4e2b-8a9d-3c4e5f6a7b8c";
const SECRET = "sk-proj-THE-PROVIDER-KEY-0123456789abcdef";

function flipBit(sealed: string, byteIndex: (length: number) => number): string {
  const [format, keyId, body] = sealed.split(":");
  const bytes = Buffer.from(body!, "base64");
  bytes[byteIndex(bytes.length)]! ^= 0x01;
  return `${format}:${keyId}:${bytes.toString("base64")}`;
}

describe("Provider-key vault", () => {
  const key = newKey();
  const vault = createVault(key);

  test("When a key is sealed and opened, then the plaintext comes back and is not in the stored value", () => {
    const sealed = vault.seal(USER_A, "openai", SECRET);
    expect(sealed).toMatch(new RegExp(`^v1:${key.id}:`));
    expect(sealed).not.toContain(SECRET);
    expect(vault.open(USER_A, "openai", sealed)).toBe(SECRET);
  });

  test("When the same key is sealed twice, then the nonces (and so the values) differ", () => {
    expect(vault.seal(USER_A, "openai", SECRET)).not.toBe(vault.seal(USER_A, "openai", SECRET));
  });

  test.each([
    ["nonce", () => 0],
    ["last nonce byte", () => 11],
    ["ciphertext", () => 12],
    ["tag", (n: number) => n - 1],
    ["first tag byte", (n: number) => n - 16],
  ])("When one bit of the %s flips, then opening fails with 'Encryption error'", (_part, index) => {
    const tampered = flipBit(vault.seal(USER_A, "openai", SECRET), index);
    expect(() => vault.open(USER_A, "openai", tampered)).toThrow(EncryptionError);
    expect(() => vault.open(USER_A, "openai", tampered)).toThrow(/^Encryption error$/);
  });

  test("When a ciphertext is moved to another user or provider, then it does not open", () => {
    const sealed = vault.seal(USER_A, "openai", SECRET);
    expect(() => vault.open(USER_B, "openai", sealed)).toThrow(EncryptionError);
    expect(() => vault.open(USER_A, "anthropic", sealed)).toThrow(EncryptionError);
  });

  test("When the value is truncated or names an unknown key, then it does not open", () => {
    const sealed = vault.seal(USER_A, "openai", SECRET);
    expect(() => vault.open(USER_A, "openai", sealed.slice(0, 30))).toThrow(EncryptionError);
    expect(() => vault.open(USER_A, "openai", sealed.replace(key.id, "000000000000"))).toThrow(EncryptionError);
    expect(() => vault.open(USER_A, "openai", "plaintext-key")).toThrow(EncryptionError);
  });

  test("When the master key rotates, then values under a previous key still open and new ones use the current key", () => {
    const old = newKey();
    const sealedBefore = createVault(old).seal(USER_A, "openai", SECRET);
    const rotated = createVault(newKey(), [old]);
    expect(rotated.open(USER_A, "openai", sealedBefore)).toBe(SECRET);
    expect(rotated.keyStateOf(keyIdOfSealed(sealedBefore)!)).toBe("previous");
    expect(rotated.keyStateOf(keyIdOfSealed(rotated.seal(USER_A, "openai", SECRET))!)).toBe("current");
    expect(rotated.keyStateOf("000000000000")).toBe("unknown");
    expect(() => createVault(newKey()).open(USER_A, "openai", sealedBefore)).toThrow(EncryptionError);
  });

  test.each([
    ["a passphrase", "correct horse battery staple"],
    ["too short", randomBytes(16).toString("base64")],
    ["too long hex", randomBytes(33).toString("hex")],
    ["all zeros", Buffer.alloc(32).toString("base64")],
    ["a repeated pattern", "abababababababababababababababababababababababababababababababab"],
  ])("When API_KEY_ENCRYPTION_KEY is %s, then start-up is refused without echoing it", (_what, value) => {
    const { logger } = captureLogger();
    let error: unknown;
    try {
      openVault(
        { currentKey: value, previousKeys: [], embedded: true, dataDir: mkdtempSync(join(tmpdir(), "v-")) },
        logger,
      );
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems[0]).toMatch(/^API_KEY_ENCRYPTION_KEY: /);
    expect((error as Error).message).not.toContain(value);
  });

  test("When the key is 64 hex characters or base64url, then it is accepted", () => {
    const bytes = randomBytes(32);
    expect(parseMasterKey(bytes.toString("hex"), "k").key.equals(bytes)).toBe(true);
    expect(parseMasterKey(bytes.toString("base64url"), "k").key.equals(bytes)).toBe(true);
  });

  test("When embedded mode has no key, then one is generated once into the data directory with mode 0600", () => {
    const dataDir = mkdtempSync(join(tmpdir(), "v-"));
    const { logger, text } = captureLogger();
    const first = openVault({ previousKeys: [], embedded: true, dataDir }, logger);
    const sealed = first.seal(USER_A, "openai", SECRET);
    expect(statSync(join(dataDir, "vault.key")).mode & 0o777).toBe(0o600);
    expect(text()).toContain("generated a vault master key");
    const second = openVault({ previousKeys: [], embedded: true, dataDir }, logger);
    expect(second.open(USER_A, "openai", sealed)).toBe(SECRET);
    expect(text().match(/generated a vault master key/g)).toHaveLength(1);
  });

  test("When an external database is configured without a key, then start-up is refused", () => {
    const { logger } = captureLogger();
    expect(() => openVault({ previousKeys: [], embedded: false, dataDir: tmpdir() }, logger)).toThrow(
      /API_KEY_ENCRYPTION_KEY: required when DATABASE_URL is set/,
    );
  });
});
