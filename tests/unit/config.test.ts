import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, loadConfig } from "../../src/config";
import { vaultKeysFrom } from "../../src/vault";

function problemsFor(env: Record<string, string>, configDir?: string): string[] {
  try {
    loadConfig(env, { configDir });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("Configuration", () => {
  test("When nothing is set, then the embedded defaults apply", () => {
    const config = loadConfig({});
    expect(config.mode).toBe("proxy");
    expect(config.http).toMatchObject({ host: "0.0.0.0", port: 8000, apiPrefix: "/v1", maxBodyBytes: 10 * 1024 ** 2 });
    expect(config.database.url).toBeUndefined();
    expect(config.redis.url).toBeUndefined();
    expect(config.qdrant.collection).toBe("perpetual_memory");
    expect(config.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(config.tiers.defaultTier).toBe("free");
    expect(config.tiers.byName.get("free")).toMatchObject({ requestsPerMinute: 10, requestsPerDay: 1000 });
    expect(config.tiers.byName.get("enterprise")).toMatchObject({ requestsPerMinute: 1000, requestsPerDay: 1_000_000 });
    expect(config.log.format).toBe("pretty");
  });

  test("When PORT is set (Railway, Render, Fly), then it is the port unless API_PORT is set", () => {
    expect(loadConfig({ PORT: "3000" }).http.port).toBe(3000);
    expect(loadConfig({ PORT: "3000", API_PORT: "8080" }).http.port).toBe(8080);
    expect(loadConfig({ PORT: "", API_PORT: "" }).http.port).toBe(8000);
    expect(problemsFor({ PORT: "eighty" })).toEqual(["PORT: must be a whole number from 0 to 65535"]);
  });

  test("When tier limit variables are set, then they replace those tiers' request limits from tiers.json", () => {
    const config = loadConfig({
      FREE_TIER_RATE_LIMIT_PER_MINUTE: "25",
      PRO_TIER_RATE_LIMIT_PER_DAY: "123456",
      ENTERPRISE_TIER_RATE_LIMIT_PER_MINUTE: "5000",
    });
    expect(config.tiers.byName.get("free")).toMatchObject({ requestsPerMinute: 25, requestsPerDay: 1000 });
    expect(config.tiers.byName.get("pro")).toMatchObject({ requestsPerDay: 123456 });
    expect(config.tiers.byName.get("enterprise")).toMatchObject({ requestsPerMinute: 5000, requestsPerDay: 1_000_000 });
    expect(problemsFor({ FREE_TIER_RATE_LIMIT_PER_DAY: "0" })).toEqual([
      "FREE_TIER_RATE_LIMIT_PER_DAY: must be a whole number from 1 to 1000000000",
    ]);
    const dir = mkdtempSync(join(tmpdir(), "tiers-"));
    writeFileSync(
      join(dir, "tiers.json"),
      JSON.stringify({
        default_tier: "basic",
        tiers: {
          basic: { requests_per_minute: 1, requests_per_day: 1, tokens_per_minute: null, tokens_per_day: null },
        },
      }),
    );
    for (const file of ["providers.json", "models.json"]) {
      writeFileSync(join(dir, file), readFileSync(join(__dirname, "..", "..", "config", file)));
    }
    expect(problemsFor({ PRO_TIER_RATE_LIMIT_PER_MINUTE: "9" }, dir)).toEqual([
      'PRO_TIER_RATE_LIMIT_PER_MINUTE: config/tiers.json has no tier "pro"',
    ]);
  });

  test("When production would keep memory or rate limits per process, then the start is refused unless chosen", () => {
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig({ NODE_ENV: "production", ...env }, { server: true });
        return [];
      } catch (error) {
        return (error as ConfigError).problems;
      }
    };
    expect(problems({}).map((p) => p.split(":")[0])).toEqual(["QDRANT_URL", "REDIS_URL"]);
    expect(problems({}).join(" ")).toMatch(/replicas would not share it.*MEMORY_STORE=embedded/);
    expect(problems({ MEMORY_STORE: "embedded", RATE_LIMIT_STORE: "memory" })).toEqual([]);
    expect(problems({ QDRANT_URL: "http://qdrant:6333", REDIS_URL: "redis://redis:6379" })).toEqual([]);
    expect(problems({ MEMORY_STORE: "qdrant", RATE_LIMIT_STORE: "memory" })).toContain(
      "MEMORY_STORE: qdrant needs QDRANT_URL",
    );
    expect(problems({ MEMORY_STORE: "embedded", QDRANT_URL: "http://q:6333", REDIS_URL: "redis://r:6379" })).toEqual([
      "MEMORY_STORE: embedded contradicts QDRANT_URL",
    ]);
    // Outside production the embedded defaults need no confirmation: `npm start` just works. The CLI keeps neither
    // memory nor rate limits, so a production migration or backup needs neither Qdrant nor Redis.
    expect(() => loadConfig({ NODE_ENV: "development" }, { server: true })).not.toThrow();
    expect(() => loadConfig({ NODE_ENV: "production" })).not.toThrow();
  });

  test("When master keys are set, then only the vault reads them: the Config handed to the web layer has none", () => {
    const current = randomBytes(32).toString("base64");
    const previous = randomBytes(32).toString("hex");
    const env = { API_KEY_ENCRYPTION_KEY: current, API_KEY_ENCRYPTION_KEYS_PREVIOUS: ` ${previous} ,` };
    const config = loadConfig(env);
    const everything = JSON.stringify(config, (_k, v) => (v instanceof Map ? [...v] : v));
    expect(everything).not.toContain(current);
    expect(everything).not.toContain(previous);
    expect(vaultKeysFrom(env)).toEqual({ currentKey: current, previousKeys: [previous] });
  });

  test("When the seed's variable names are set, then each lands in the typed config", () => {
    const config = loadConfig({
      NODE_ENV: "production",
      MODE: "local",
      API_PORT: "9001",
      API_PREFIX: "/api/v2",
      DEBUG: "true",
      QDRANT_CLOUD_URL: "https://q.example.com:6333",
      QDRANT_COLLECTION: "mem",
      REDIS_HOST: "cache",
      REDIS_PORT: "6380",
      REDIS_PASSWORD: "p@ss word",
      MAX_REQUEST_BODY_SIZE: "2mb",
      REQUEST_TIMEOUT_SECONDS: "45",
      RATE_LIMIT_PER_MINUTE: "5",
      MODEL_NAME: "meta-llama/Llama-3.1-8B-Instruct",
    });
    expect(config.mode).toBe("local");
    expect(config.http).toMatchObject({
      port: 9001,
      apiPrefix: "/api/v2",
      maxBodyBytes: 2 * 1024 ** 2,
      requestTimeoutMs: 45_000,
    });
    expect(config.debug).toBe(true);
    expect(config.log).toEqual({ level: "debug", format: "json" });
    expect(config.qdrant).toMatchObject({ url: "https://q.example.com:6333", collection: "mem" });
    expect(new URL(config.redis.url!).port).toBe("6380");
    expect(decodeURIComponent(new URL(config.redis.url!).password)).toBe("p@ss word");
    expect(config.rateLimitDefaults.perMinute).toBe(5);
    expect(config.modelName).toBe("meta-llama/Llama-3.1-8B-Instruct");
  });

  test("When REDIS_URL and QDRANT_URL are set, then they win over the split variables", () => {
    const config = loadConfig({
      REDIS_URL: "redis://r:1/0",
      REDIS_HOST: "other",
      QDRANT_URL: "http://a:6333",
      QDRANT_CLOUD_URL: "http://b:6333",
    });
    expect(config.redis.url).toBe("redis://r:1/0");
    expect(config.qdrant.url).toBe("http://a:6333");
  });

  test.each([
    ["MODE", "cloud", 'MODE: must be "proxy" or "local"'],
    ["API_PORT", "eighty", "API_PORT: must be a whole number from 0 to 65535"],
    ["API_PORT", "70000", "API_PORT: must be a whole number from 0 to 65535"],
    ["API_PREFIX", "v1/", 'API_PREFIX: must start with "/"'],
    ["DEBUG", "maybe", "DEBUG: must be one of true, false"],
    ["LOG_LEVEL", "loud", "LOG_LEVEL: must be one of error, warn"],
    ["SUPABASE_URL", "not a url", "SUPABASE_URL: must be an http:// or https:// URL"],
    ["QDRANT_COLLECTION", "bad name!", "QDRANT_COLLECTION: must be letters, digits"],
    ["MAX_REQUEST_BODY_SIZE", "huge", "MAX_REQUEST_BODY_SIZE: must be a size from 1kb to 1gb"],
    ["REQUEST_TIMEOUT_SECONDS", "0", "REQUEST_TIMEOUT_SECONDS: must be a whole number from 1 to 3600"],
    ["RATE_LIMIT_PER_DAY", "-3", "RATE_LIMIT_PER_DAY: must be a whole number"],
  ])("When %s=%j, then the problem is named clearly", (name, value, expected) => {
    const problems = problemsFor({ [name]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(expected);
  });

  test("When several values are invalid, then every problem is reported at once", () => {
    const problems = problemsFor({ MODE: "x", API_PORT: "y", LOG_FORMAT: "xml" });
    expect(problems.map((p) => p.split(":")[0]).sort()).toEqual(["API_PORT", "LOG_FORMAT", "MODE"]);
  });

  test("When secret variables are invalid, then the message never contains their values", () => {
    const secrets = {
      DATABASE_URL: "mysql://admin:hunter2-db-password@db/x",
      REDIS_URL: "http://:redis-secret-value@r:6379",
      ADMIN_API_KEY: "short-admin-secret",
    };
    let message = "";
    try {
      loadConfig(secrets);
    } catch (error) {
      message = String((error as Error).message);
    }
    expect(message).toContain("DATABASE_URL: must be a postgres://");
    expect(message).toContain("REDIS_URL: must be a redis://");
    expect(message).toContain("ADMIN_API_KEY: must be at least 32 characters");
    for (const value of Object.values(secrets)) expect(message).not.toContain(value);
    expect(message).not.toContain("hunter2");
    expect(message).not.toContain("redis-secret-value");
  });

  test("When tiers.json is broken, then the file and field are named", () => {
    const dir = mkdtempSync(join(tmpdir(), "perpetual-config-"));
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, "tiers.json"),
      JSON.stringify({
        default_tier: "gold",
        tiers: {
          free: { requests_per_minute: 0, requests_per_day: 10, tokens_per_minute: null, tokens_per_day: null },
        },
      }),
    );
    const problems = problemsFor({}, dir);
    expect(problems.some((p) => p.includes("tiers.json") && p.includes("tiers.free.requests_per_minute"))).toBe(true);
    writeFileSync(join(dir, "tiers.json"), "{ not json");
    expect(problemsFor({}, dir)[0]).toMatch(/tiers\.json: cannot be read as JSON/);
  });
});
