import { mkdtempSync, statSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { readMigrations } from "../../src/db";
import { startFakeOpenAiUpstream } from "../fakes/openai-upstream";
import { createTestDatabase } from "../helpers/postgres";
import { collect, runCli, spawnEntry, waitForOutput } from "../helpers/processes";
import { streamedText } from "../helpers/streams";

jest.setTimeout(300_000);

function freshDataDir(): string {
  return mkdtempSync(join(tmpdir(), "perpetual-proc-"));
}

describe("The server process on embedded defaults", () => {
  test("When started with no configuration, then it serves /health, runs CLI commands inside itself, refuses a second server on its data, and drains on SIGTERM", async () => {
    const dataDir = freshDataDir();
    const env = {
      DATA_DIR: dataDir,
      API_PORT: "0",
      API_HOST: "127.0.0.1",
      LOG_FORMAT: "json",
      NODE_ENV: "development",
    };
    const server = spawnEntry("src/main.ts", [], env);
    const { output, finished } = collect(server);
    const [, port] = await waitForOutput(output, /"url":"http:\/\/127\.0\.0\.1:(\d+)"/);
    const base = `http://127.0.0.1:${port}`;

    const health = await fetch(`${base}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: "healthy", models_loaded: false, vector_db_connected: true });
    expect((await fetch(`${base}/ready`)).status).toBe(200);

    // The first start says how to get a user; the CLI gets one without stopping anything, with its usual output.
    expect(output()).toContain(
      "no users yet: create one (the server may keep running) with: npm run cli -- users create",
    );
    const created = await runCli(["users", "create", "--email", "while-running@example.com"], { DATA_DIR: dataDir });
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^Created user [0-9a-f-]{36} \(while-running@example\.com, tier free\)\.$/m);
    const key = /API key \(shown only once, store it now\): (sk-perp-\w{40})/.exec(created.stdout)![1]!;
    expect((await fetch(`${base}/v1/me`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    const duplicate = await runCli(["users", "create", "--email", "while-running@example.com"], { DATA_DIR: dataDir });
    expect(duplicate.code).toBe(2);
    expect(duplicate.stderr).toContain("A user with email while-running@example.com already exists");
    expect((await runCli(["migrate"], { DATA_DIR: dataDir })).stdout).toContain("Database is up to date.");
    expect(statSync(join(dataDir, "cli.sock")).mode & 0o777).toBe(0o600);
    // A second server on the same data is refused at once, naming the process that holds it.
    const second = await collect(spawnEntry("src/main.ts", [], env)).finished;
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/open in another Perpetual process \(pid \d+\)/);

    // A request whose body is still arriving when SIGTERM comes must be answered before the process exits.
    const inFlight = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        `${base}/v1/not-a-route`,
        { method: "POST", headers: { "content-type": "application/json", "content-length": "14" } },
        (res) => {
          let body = "";
          res.on("data", (d: Buffer) => {
            body += d.toString();
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on("error", reject);
      req.write('{"half": ');
      setTimeout(() => {
        server.kill("SIGTERM");
        setTimeout(() => req.end("true}"), 300);
      }, 200);
    });
    const answered = await inFlight;
    expect(answered.status).toBe(404);
    expect(JSON.parse(answered.body)).toMatchObject({ error: { code: "unknown_url" } });

    const exit = await finished;
    expect(exit.code).toBe(0);
    expect(output()).toContain('"message":"stopped"');
    await expect(fetch(`${base}/health`)).rejects.toThrow();

    const afterwards = await runCli(["migrate"], { DATA_DIR: dataDir });
    expect(afterwards.stdout).toContain("Database is up to date.");
    expect(afterwards.code).toBe(0);
  });

  test("When the configuration is invalid, then it exits 1 listing each problem without secret values", async () => {
    const { finished } = collect(
      spawnEntry("src/main.ts", [], {
        DATA_DIR: freshDataDir(),
        API_PORT: "http",
        ADMIN_API_KEY: "too-short-secret-value",
      }),
    );
    const exit = await finished;
    expect(exit.code).toBe(1);
    expect(exit.stderr).toContain("API_PORT: must be a whole number from 0 to 65535");
    expect(exit.stderr).toContain("ADMIN_API_KEY: must be at least 32 characters when set");
    expect(exit.stderr).not.toContain("too-short-secret-value");
  });

  test("When production would keep memory and rate limits per process, then the server exits 1 saying why", async () => {
    const exit = await collect(spawnEntry("src/main.ts", [], { DATA_DIR: freshDataDir(), NODE_ENV: "production" }))
      .finished;
    expect(exit.code).toBe(1);
    expect(exit.stderr).toContain(
      "QDRANT_URL: NODE_ENV=production without Qdrant would keep memory inside each process",
    );
    expect(exit.stderr).toContain("REDIS_URL: NODE_ENV=production without Redis would count rate limits per process");
  });
});

describe("A newcomer on embedded defaults", () => {
  test("When they start the server and create a user with the CLI while it runs, then they can add, list and delete a provider key, and a revoked key gets 401", async () => {
    const dataDir = freshDataDir();
    const upstream = await startFakeOpenAiUpstream();
    const server = spawnEntry("src/main.ts", [], {
      DATA_DIR: dataDir,
      API_PORT: "0",
      API_HOST: "127.0.0.1",
      LOG_FORMAT: "json",
      OPENAI_BASE_URL: upstream.url,
    });
    const { output, finished } = collect(server);
    try {
      const [, port] = await waitForOutput(output, /"url":"http:\/\/127\.0\.0\.1:(\d+)"/);
      const base = `http://127.0.0.1:${port}/v1`;
      const created = await runCli(["users", "create", "--email", "new@example.com"], { DATA_DIR: dataDir });
      expect(created.code).toBe(0);
      const key = /(sk-perp-\w{40})/.exec(created.stdout)![1]!;
      const auth = (token: string) => ({ authorization: `Bearer ${token}`, "content-type": "application/json" });
      const providerKey = "sk-proj-newcomer-0123456789abcdef";
      const added = await fetch(`${base}/provider-keys/add`, {
        method: "POST",
        headers: auth(key),
        body: JSON.stringify({ provider: "openai", api_key: providerKey }),
      });
      expect(added.status).toBe(200);
      const listed = await (await fetch(`${base}/provider-keys`, { headers: auth(key) })).text();
      expect(listed).toContain('"last4":"cdef"');
      expect(listed).not.toContain(providerKey);

      // The official SDK, pointed at the running server, streams a chat answered with the stored key.
      const client = new OpenAI({ apiKey: key, baseURL: base, maxRetries: 0 });
      expect(await streamedText(client, "gpt-4o", "from npm start")).toBe("Echo: from npm start");
      expect(upstream.received.at(-1)?.authorization).toBe(`Bearer ${providerKey}`);
      expect((await fetch(`${base}/provider-keys/openai`, { method: "DELETE", headers: auth(key) })).status).toBe(200);

      const keys = (await (await fetch(`${base}/api-keys`, { headers: auth(key) })).json()) as {
        data: Array<{ id: string }>;
      };
      expect(
        (await fetch(`${base}/api-keys/${keys.data[0]!.id}`, { method: "DELETE", headers: auth(key) })).status,
      ).toBe(200);
      const refused = await fetch(`${base}/me`, { headers: auth(key) });
      expect(refused.status).toBe(401);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("invalid_api_key");
      expect(output()).not.toContain(providerKey);
    } finally {
      server.kill("SIGTERM");
      await finished;
      await upstream.close();
    }
  });
});

describe("The CLI", () => {
  test("When migrate runs against PostgreSQL 15 twice, then it applies then reports up to date", async () => {
    const database = await createTestDatabase();
    try {
      const first = await runCli(["migrate"], { DATABASE_URL: database.url });
      expect(first.code).toBe(0);
      expect(first.stdout).toContain(`Applied ${readMigrations().length} migration(s)`);
      const second = await runCli(["migrate"], { DATABASE_URL: database.url });
      expect(second.stdout).toContain("Database is up to date.");
    } finally {
      await database.drop();
    }
  });

  test("When migrate runs on a fresh embedded database, then it reports the migrations it applied", async () => {
    const result = await runCli(["migrate"], { DATA_DIR: freshDataDir() });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`Applied ${readMigrations().length} migration(s)`);
  });

  test("When the database is unreachable, then migrate fails with exit 1 and no password in the message", async () => {
    const result = await runCli(["migrate"], { DATABASE_URL: "postgres://app:pw-should-not-show@127.0.0.1:1/db" });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^Error: /);
    expect(result.stderr).not.toContain("pw-should-not-show");
  });

  test("When asked for help or given an unknown command, then it answers with usage and the right exit code", async () => {
    const help = await runCli(["--help"], {});
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("migrate");
    const unknown = await runCli(["frobnicate"], {});
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('Unknown command "frobnicate"');
  });
});
