/**
 * The fault suite: the real server process (`npm start`'s entry point) on PostgreSQL 15 under load, killed,
 * cut off from its database, its connections terminated, stopped mid-stream. Each case prints its figures.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { type Database, migrate, openPostgres } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { type FakeOpenAiUpstream, startFakeOpenAiUpstream } from "../fakes/openai-upstream";
import { createTestDatabase } from "../helpers/postgres";
import { type ServerProcess, startServerProcess } from "../helpers/processes";
import { startTcpProxy } from "../helpers/tcp-proxy";

jest.setTimeout(180_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function report(name: string, figures: Record<string, number | string>): void {
  process.stderr.write(`[fault suite] ${name}: ${JSON.stringify(figures)}\n`);
}

interface Load {
  /** Client request ids of the requests answered 200. */
  ok: string[];
  statuses: Map<number, number>;
  networkErrors: number;
  stop(): Promise<void>;
}

/** `concurrency` callers sending `request(id)` back to back until stopped; each request has its own x-request-id. */
function drive(concurrency: number, request: (id: string) => Promise<Response>): Load {
  const load: Load = { ok: [], statuses: new Map(), networkErrors: 0, stop: async () => {} };
  let running = true;
  let n = 0;
  const prefix = randomBytes(4).toString("hex");
  const worker = async () => {
    while (running) {
      const id = `fault-${prefix}-${n++}`;
      try {
        const res = await request(id);
        await res.arrayBuffer();
        load.statuses.set(res.status, (load.statuses.get(res.status) ?? 0) + 1);
        if (res.status === 200) load.ok.push(id);
      } catch {
        load.networkErrors++;
        await sleep(20);
      }
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  load.stop = async () => {
    running = false;
    await Promise.all(workers);
  };
  return load;
}

const chat = (base: string, key: string) => (id: string) =>
  fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", "x-request-id": id },
    body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: `q ${id}` }], mock_response: "a" }),
  });

function statusFigures(statuses: Map<number, number>): Record<string, number> {
  return Object.fromEntries([...statuses].map(([status, n]) => [`status_${status}`, n]));
}

async function killHard(server: ServerProcess): Promise<void> {
  server.child.kill("SIGKILL");
  await server.finished;
}

describe("The fault suite, on PostgreSQL 15", () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = openPostgres({ url: database.url, poolSize: 4 });
    await migrate(db);
  });
  afterAll(async () => {
    await db.close();
    await database.drop();
  });

  async function newCaller(): Promise<{ userId: string; key: string }> {
    const user = await createUser(db, `fault-${randomBytes(4).toString("hex")}@example.com`, "enterprise");
    return { userId: user.id, key: (await createApiKey(db, user.id)).key };
  }

  /** Rows of answered (200) requests per client request id of the user, once at least `expected` rows are there
   * (or after 60 s). Refused requests (429 beyond the tier's limit) have rows too: they are not counted here. */
  async function rowsByClientId(userId: string, expected: number): Promise<Map<string, number>> {
    const read = async () =>
      new Map(
        (
          await db.query<{ id: string; n: number }>(
            `select client_request_id as id, count(*)::int as n from usage_logs
              where user_id = $1 and status_code = 200 group by client_request_id`,
            [userId],
          )
        ).map((r) => [r.id, r.n]),
      );
    const total = (rows: Map<string, number>) => [...rows.values()].reduce((a, b) => a + b, 0);
    let rows = await read();
    for (let i = 0; i < 300 && total(rows) < expected; i++) {
      await sleep(200);
      rows = await read();
    }
    return rows;
  }

  function expectOneRowPerAnswer(ok: string[], rows: Map<string, number>, inFlight: number) {
    const missing = ok.filter((id) => rows.get(id) !== 1);
    expect(missing).toEqual([]);
    // Requests journaled but not yet answered when the process died may have rows too; never twice.
    expect([...rows.values()].every((n) => n === 1)).toBe(true);
    expect(rows.size - ok.length).toBeLessThanOrEqual(inFlight);
  }

  const masterKey = randomBytes(32).toString("base64");
  const baseEnv = (dataDir: string, databaseUrl: string) => ({
    API_KEY_ENCRYPTION_KEY: masterKey,
    DATABASE_URL: databaseUrl,
    DATA_DIR: dataDir,
    AUTH_CACHE_TTL_SECONDS: "300",
    MEMORY_DEFAULT_MODE: "off",
  });

  test("When the process is killed with SIGKILL under load, then after a restart every answered request has exactly one usage row", async () => {
    const caller = await newCaller();
    const env = baseEnv(mkdtempSync(join(tmpdir(), "fault-kill-")), database.url);
    const server = await startServerProcess(env);
    const concurrency = 20;
    const load = drive(concurrency, chat(server.base, caller.key));
    for (let i = 0; i < 300 && load.ok.length < 1_500; i++) await sleep(50);
    await killHard(server);
    await load.stop();
    const restarted = await startServerProcess(env);
    try {
      const rows = await rowsByClientId(caller.userId, load.ok.length);
      report("kill -9 under load", {
        ...statusFigures(load.statuses),
        answered_200: load.ok.length,
        rows: rows.size,
        missing: load.ok.filter((id) => !rows.has(id)).length,
      });
      expectOneRowPerAnswer(load.ok, rows, concurrency);
    } finally {
      restarted.child.kill("SIGTERM");
      await restarted.finished;
    }
  });

  test("When PostgreSQL is away and the process is then killed with SIGKILL, then the next start writes every answered request's row", async () => {
    const caller = await newCaller();
    const target = new URL(database.url);
    const proxy = await startTcpProxy(target.hostname, Number(target.port));
    const viaProxy = new URL(database.url);
    viaProxy.port = String(proxy.port);
    const env = baseEnv(mkdtempSync(join(tmpdir(), "fault-outage-")), viaProxy.toString());
    const server = await startServerProcess(env);
    const concurrency = 20;
    try {
      expect((await chat(server.base, caller.key)("warm-up")).status).toBe(200); // the key is cached from here on
      await proxy.cut();
      const load = drive(concurrency, chat(server.base, caller.key));
      for (let i = 0; i < 300 && load.ok.length < 2_000; i++) await sleep(50);
      await killHard(server);
      await load.stop();
      await proxy.restore();
      const restarted = await startServerProcess(env);
      try {
        const rows = await rowsByClientId(caller.userId, load.ok.length + 1);
        report("outage + kill -9", {
          ...statusFigures(load.statuses),
          answered_200_during_outage: load.ok.length,
          rows: rows.size,
          missing: load.ok.filter((id) => !rows.has(id)).length,
        });
        expectOneRowPerAnswer(["warm-up", ...load.ok], rows, concurrency);
      } finally {
        restarted.child.kill("SIGTERM");
        await restarted.finished;
      }
    } finally {
      proxy.close();
    }
  });

  test("When PostgreSQL terminates the server's connections under load, then the process lives on and answers 200 or 503 only (or 429 past the tier's limit)", async () => {
    const caller = await newCaller();
    const env = { ...baseEnv(mkdtempSync(join(tmpdir(), "fault-terminate-")), database.url) };
    // Every request looks its key up in the database: terminations hit reads and transactions alike.
    const server = await startServerProcess({ ...env, AUTH_CACHE_TTL_SECONDS: "0" });
    try {
      const headers = { authorization: `Bearer ${caller.key}` };
      const chats = drive(8, chat(server.base, caller.key));
      // GET /v1/api-keys runs in a transaction as the user (RLS): a checked-out client between statements.
      const accounts = drive(8, () => fetch(`${server.base}/v1/api-keys`, { headers }));
      let terminated = 0;
      for (let round = 0; round < 15; round++) {
        await sleep(200);
        const [row] = await db.query<{ n: number }>(
          `select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
            where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'`,
        );
        terminated += row!.n;
      }
      await sleep(300);
      await Promise.all([chats.stop(), accounts.stop()]);
      const statuses = new Map([...chats.statuses]);
      for (const [status, n] of accounts.statuses) statuses.set(status, (statuses.get(status) ?? 0) + n);
      report("pg_terminate_backend under load", {
        connections_terminated: terminated,
        ...statusFigures(statuses),
        network_errors: chats.networkErrors + accounts.networkErrors,
      });
      expect(terminated).toBeGreaterThan(0);
      if (server.child.exitCode !== null) throw new Error(`the server died:\n${server.output().slice(-3_000)}`);
      // 429 is the tier's own limit (1,000 requests a minute), which a fast enough server reaches within the 3 s of
      // load: an answer, not a fault. Anything else (500, a dropped connection) would be one.
      expect([...statuses.keys()].filter((s) => s !== 200 && s !== 503 && s !== 429)).toEqual([]);
      expect(chats.networkErrors + accounts.networkErrors).toBe(0);
      expect((await fetch(`${server.base}/v1/api-keys`, { headers })).status).toBe(200);
      const rows = await rowsByClientId(caller.userId, chats.ok.length);
      expect(chats.ok.filter((id) => rows.get(id) !== 1)).toEqual([]);
    } finally {
      server.child.kill("SIGTERM");
      await server.finished;
    }
  });

  describe("stopping with streams in flight", () => {
    let upstream: FakeOpenAiUpstream;
    beforeAll(async () => {
      upstream = await startFakeOpenAiUpstream({ record: false });
    });
    afterAll(() => upstream.close());

    async function serverWithProviderKey(extraEnv: Record<string, string>) {
      const caller = await newCaller();
      const server = await startServerProcess({
        ...baseEnv(mkdtempSync(join(tmpdir(), "fault-drain-")), database.url),
        OPENAI_BASE_URL: upstream.url,
        ...extraEnv,
      });
      const added = await fetch(`${server.base}/v1/provider-keys/add`, {
        method: "POST",
        headers: { authorization: `Bearer ${caller.key}`, "content-type": "application/json" },
        body: JSON.stringify({ provider: "openai", api_key: `sk-proj-${randomBytes(12).toString("hex")}` }),
      });
      expect(added.status).toBe(200);
      const client = new OpenAI({ apiKey: caller.key, baseURL: `${server.base}/v1`, maxRetries: 0 });
      return { caller, server, client };
    }

    /** Opens `count` slow streams of `words` words (40 ms each); `started` resolves once each has its first chunk. */
    function openStreams(client: OpenAI, count: number, words: number) {
      const content = Array.from({ length: words }, (_, i) => `w${i}`).join(" ");
      let started = 0;
      const streams = Array.from({ length: count }, async () => {
        const { data, response } = await client.chat.completions
          .create({ model: "openai/slow-stream", messages: [{ role: "user", content }], stream: true })
          .withResponse();
        let text = "";
        let first = true;
        try {
          for await (const chunk of data) {
            if (first) started++;
            first = false;
            text += chunk.choices[0]?.delta.content ?? "";
          }
          return { requestId: response.headers.get("x-request-id")!, text, completed: true };
        } catch {
          return { requestId: response.headers.get("x-request-id")!, text, completed: false };
        }
      });
      const done = Promise.all(streams);
      const allStarted = (async () => {
        while (started < count) await Promise.race([sleep(20), done]);
      })();
      return { started: allStarted, done };
    }

    const rowsOf = (ids: string[]) =>
      db.query<{ request_id: string; status_code: number; error_code: string | null; completion_tokens: number }>(
        "select request_id, status_code, error_code, completion_tokens from usage_logs where request_id = any($1)",
        [ids],
      );

    test("When SIGTERM comes with 100 streams in flight, then every stream finishes and has its row", async () => {
      const { server, client } = await serverWithProviderKey({});
      const streams = openStreams(client, 100, 25);
      await streams.started;
      server.child.kill("SIGTERM");
      const done = await streams.done;
      const exit = await server.finished;
      const rows = await rowsOf(done.map((d) => d.requestId));
      report("SIGTERM with 100 streams", {
        completed: done.filter((d) => d.completed).length,
        rows: rows.length,
        exit_code: exit.code ?? -1,
      });
      expect(done.every((d) => d.completed && d.text.startsWith("Echo: w0"))).toBe(true);
      expect(exit.code).toBe(0);
      expect(rows).toHaveLength(100);
      expect(rows.every((r) => r.status_code === 200)).toBe(true);
    });

    test("When the drain deadline cuts streams, then each is recorded as server_shutdown with the tokens sent so far", async () => {
      const { server, client } = await serverWithProviderKey({ SHUTDOWN_TIMEOUT_SECONDS: "1" });
      // 150 words at 40 ms: each stream needs ~6 s, far beyond the 1 s deadline.
      const streams = openStreams(client, 20, 150);
      await streams.started;
      server.child.kill("SIGTERM");
      const done = await streams.done;
      const exit = await server.finished;
      const rows = await rowsOf(done.map((d) => d.requestId));
      report("drain deadline", {
        streams_cut: done.filter((d) => !d.completed || !d.text.endsWith("w149")).length,
        rows: rows.length,
        exit_code: exit.code ?? -1,
      });
      expect(exit.code).toBe(0);
      expect(rows).toHaveLength(20);
      for (const row of rows) {
        expect(row).toMatchObject({ status_code: 499, error_code: "server_shutdown" });
        expect(row.completion_tokens).toBeGreaterThan(0);
      }
    });
  });
});
