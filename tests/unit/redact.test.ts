import { isSecretKey, logRequest, redact, redactText, withLogContext } from "../../src/log";
import { eventually } from "../helpers/eventually";
import { captureLogger } from "../helpers/logs";

const bearer = "sk-perp-9fK2mQ8xLz4TqW7nR1vB3cY6hJ0dE5aS";
const openaiKey = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789";
const anthropicKey = "sk-ant-api03-ZZZZZZZZZZZZZZZZZZZZZZZZZZ";

describe("Redaction", () => {
  test("When a log line carries a bearer token, an api_key field and a nested provider_key, then none is printed", () => {
    const { logger, text } = captureLogger();
    logger.info(`incoming Authorization: Bearer ${bearer}`, {
      headers: { authorization: `Bearer ${bearer}`, "x-api-key": "opaque-value-123" },
      api_key: openaiKey,
      body: { settings: { provider_key: anthropicKey, providerKey: "vendor-key-xyz-987" } },
      note: `user pasted ${openaiKey} into the prompt`,
    });
    const out = text();
    for (const secret of [bearer, openaiKey, anthropicKey, "opaque-value-123", "vendor-key-xyz-987"]) {
      expect(out).not.toContain(secret);
    }
    expect(out).toContain("[REDACTED]");
    expect(out).toContain("incoming Authorization: Bearer [REDACTED]");
  });

  test("When an error whose message and stack contain a key is logged, then the key is gone from both", () => {
    const { logger, text } = captureLogger();
    const error = new Error(`upstream rejected key ${openaiKey}`);
    logger.error("provider call failed", { error });
    logger.error(new Error(`direct ${anthropicKey}`));
    const out = text();
    expect(out).not.toContain(openaiKey);
    expect(out).not.toContain(anthropicKey);
    expect(out).toContain("upstream rejected key [REDACTED]");
    expect(out).toContain("stack");
  });

  test("When usage counters are logged, then they are kept", () => {
    expect(redact({ prompt_tokens: 12, total_tokens: 20, request_id: "req_1", key_count: 2 })).toEqual({
      prompt_tokens: 12,
      total_tokens: 20,
      request_id: "req_1",
      key_count: 2,
    });
  });

  test.each([
    ["api_key", true],
    ["apiKey", true],
    ["X-Api-Key", true],
    ["authorization", true],
    ["SUPABASE_JWT_SECRET", true],
    ["access_token", true],
    ["key_hash", true],
    ["encrypted_key", true],
    ["password", true],
    ["prompt_tokens", false],
    ["user_id", false],
    ["model", false],
  ])("When the key is %s, then isSecretKey is %s", (key, expected) => {
    expect(isSecretKey(key)).toBe(expected);
  });

  test("When text holds a JWT or a URL password, then both are removed", () => {
    const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    const out = redactText(`token ${jwt} db postgres://app:s3cr3t-pw@db:5432/x`);
    expect(out).not.toContain(jwt);
    expect(out).not.toContain("s3cr3t-pw");
    expect(out).toContain("postgres://app:[REDACTED]@db:5432/x");
  });

  test.each([
    ["BEARER tok.en-value", "BEARER [REDACTED]"],
    ["basic dXNlcjpwYXNz", "basic [REDACTED]"],
    [`k=${openaiKey};`, "k=[REDACTED];"],
    ["groq gsk_ABCDEFGHIJKLMNOPQRSTUV", "groq [REDACTED]"],
    ["xai_ABCDEFGHIJKLMNOPQRSTUV rk_ABCDEFGHIJKLMNOPQRSTUV", "[REDACTED] [REDACTED]"],
    ["REDIS://user:pw-123@host", "REDIS://user:[REDACTED]@host"],
  ])("When text holds %s in any case or position, then the quick scan lets it through to redaction", (text, out) => {
    expect(redactText(text)).toBe(out);
  });

  test("When text holds nothing secret-shaped, then it comes back as the same string", () => {
    const plain = "request POST /v1/chat/completions req_0123456789abcdef 200 in 3.2 ms";
    expect(redactText(plain)).toBe(plain);
  });

  test("When a key name is asked again, then the answer is the same as the first time", () => {
    for (const key of ["api_key", "prompt_tokens", "api_key", "prompt_tokens"]) {
      expect(isSecretKey(key)).toBe(key === "api_key");
    }
  });

  test("When an object is cyclic, then redaction terminates and leaves the input untouched", () => {
    const input: Record<string, unknown> = { api_key: openaiKey };
    input.self = input;
    const out = redact(input) as Record<string, unknown>;
    expect(out.self).toBe("[Circular]");
    expect(input.api_key).toBe(openaiKey);
  });

  test("When a request line is logged, then it is the line logger.info would print (context, redaction, level), soon after", async () => {
    const { logger, lines } = captureLogger("info");
    const fields = { method: "GET", path: `/v1/keys/${openaiKey}`, status: 200, latency_ms: 1.5, user_id: undefined };
    withLogContext({ request_id: "req_1", user_id: "u1" }, () => {
      logRequest(logger, fields);
      logger.info("request", fields);
    });
    expect(lines).toHaveLength(1); // winston's line; the fast line waits to be written with others
    await eventually(() => lines.length === 2, { what: "the request line" });
    const [slow, fast] = lines.map((line) => {
      const { timestamp, ...rest } = JSON.parse(line) as Record<string, unknown>;
      expect(typeof timestamp).toBe("string");
      return rest;
    });
    expect(fast).toEqual(slow);
    expect(fast).toMatchObject({ level: "info", message: "request", request_id: "req_1" });
    expect(lines.join("\n")).not.toContain(openaiKey);
    // Below info nothing is written.
    const quiet = captureLogger("warn");
    logRequest(quiet.logger, fields);
    logRequest(logger, { ...fields, status: 201 }); // written with (after) anything the quiet logger had pending
    await eventually(() => lines.length === 3, { what: "the second request line" });
    expect(quiet.lines).toEqual([]);
  });
});
