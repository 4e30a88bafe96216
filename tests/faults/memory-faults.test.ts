/**
 * Memory write-back under faults, on the real server process with the embedded store (its worker thread) and
 * PostgreSQL 15: killed with SIGKILL during heavy write-back, and fed input that could poison a shared write path.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Database, migrate, openPostgres } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { createTestDatabase } from "../helpers/postgres";
import { startServerProcess } from "../helpers/processes";

jest.setTimeout(240_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface StoredMemory {
  id: string;
  text: string;
  role: string;
}

describe("Memory write-back under faults", () => {
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
    const user = await createUser(db, `mem-fault-${randomBytes(4).toString("hex")}@example.com`, "enterprise");
    return { userId: user.id, key: (await createApiKey(db, user.id)).key };
  }

  const env = (dataDir: string) => ({
    API_KEY_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
    DATABASE_URL: database.url,
    DATA_DIR: dataDir,
    AUTH_CACHE_TTL_SECONDS: "300",
    MEMORY_DEFAULT_MODE: "on",
  });

  const send = (base: string, key: string, body: object) =>
    fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-4o", ...body }),
    });

  /** All the user's memories (via the API), once `complete` holds for them and the user's outbox is drained (or
   * after 60 s): write-back is asynchronous, journal to outbox to store. */
  async function storedMemories(
    base: string,
    caller: { userId: string; key: string },
    complete: (texts: string[]) => boolean,
  ): Promise<StoredMemory[]> {
    let all: StoredMemory[] = [];
    for (let i = 0; i < 300; i++) {
      // Listed only once the outbox is empty: a drain in progress re-dates a repeated chunk ("Noted."), and a
      // listing taken meanwhile can page past it.
      const rows = await db.query<{ n: number }>("select count(*)::int as n from memory_outbox where user_id = $1", [
        caller.userId,
      ]);
      if (rows[0]?.n === 0) {
        all = await listAll(base, caller.key);
        if (complete(all.map((m) => m.text))) return all;
      }
      await sleep(200);
    }
    return all;
  }

  async function listAll(base: string, key: string): Promise<StoredMemory[]> {
    const all: StoredMemory[] = [];
    let after: string | undefined;
    for (;;) {
      const url = `${base}/v1/memories?limit=200${after ? `&after=${encodeURIComponent(after)}` : ""}`;
      const page = (await (await fetch(url, { headers: { authorization: `Bearer ${key}` } })).json()) as {
        data: StoredMemory[];
        next_cursor?: string | null;
      };
      all.push(...page.data);
      if (!page.next_cursor) return all;
      after = page.next_cursor;
    }
  }

  test("When the process is killed with SIGKILL during heavy write-back, then after a restart every answered exchange is stored exactly once", async () => {
    const caller = await newCaller();
    const settings = env(mkdtempSync(join(tmpdir(), "mem-fault-kill-")));
    const server = await startServerProcess(settings);
    const answered: string[] = [];
    let running = true;
    let n = 0;
    const prefix = randomBytes(3).toString("hex");
    const worker = async () => {
      while (running) {
        const text = `note ${prefix} number ${n++} about kayaking`;
        try {
          // Each answer is the same text: written back hundreds of times, stored once.
          const res = await send(server.base, caller.key, {
            messages: [{ role: "user", content: text }],
            mock_response: "Noted.",
          });
          await res.arrayBuffer();
          if (res.status === 200) answered.push(text);
        } catch {
          await sleep(20);
        }
      }
    };
    const workers = Array.from({ length: 16 }, worker);
    for (let i = 0; i < 600 && answered.length < 600; i++) await sleep(50);
    server.child.kill("SIGKILL");
    await server.finished;
    running = false;
    await Promise.all(workers);

    const restarted = await startServerProcess(settings);
    try {
      const memories = await storedMemories(restarted.base, caller, (texts) =>
        answered.every((text) => texts.includes(text)),
      );
      const texts = memories.map((m) => m.text);
      process.stderr.write(
        `[memory faults] kill -9 during write-back: ${JSON.stringify({ answered: answered.length, stored: memories.length })}\n`,
      );
      expect(answered.length).toBeGreaterThan(100);
      expect(answered.filter((text) => !texts.includes(text))).toEqual([]);
      expect(new Set(memories.map((m) => m.id)).size).toBe(memories.length);
      expect(new Set(texts).size).toBe(texts.length);
      expect(texts.filter((t) => t === "Noted.")).toHaveLength(1);
    } finally {
      restarted.child.kill("SIGTERM");
      await restarted.finished;
    }
  });

  test("When one user sends NUL bytes, lone surrogates and a 100,000-part message, then everyone's memories are written and the server stays responsive", async () => {
    const mallory = await newCaller();
    const alice = await newCaller();
    const server = await startServerProcess(env(mkdtempSync(join(tmpdir(), "mem-fault-input-"))));
    try {
      const hostile = [
        { messages: [{ role: "user", content: "nul \u0000 byte in the middle" }], mock_response: "ok \u0000 too" },
        { messages: [{ role: "user", content: "lone \ud800 surrogate and \udfff another" }], mock_response: "fine" },
        {
          messages: [
            { role: "user", content: Array.from({ length: 100_000 }, (_, i) => ({ type: "text", text: `p${i}` })) },
          ],
          mock_response: "many parts",
        },
      ];
      const statuses = await Promise.all(
        hostile.map(async (body) => {
          const res = await send(server.base, mallory.key, body);
          const payload = (await res.json()) as { error?: { message: string; type: string } };
          if (res.status !== 200) expect(payload.error?.message).toEqual(expect.any(String));
          return res.status;
        }),
      );
      expect(statuses.every((s) => s === 200 || s === 400)).toBe(true);
      for (let i = 0; i < 5; i++) {
        const res = await send(server.base, alice.key, {
          messages: [{ role: "user", content: `alice remembers the lighthouse ${i}` }],
          mock_response: `the lighthouse ${i} noted`,
        });
        expect(res.status).toBe(200);
      }
      const health = await fetch(`${server.base}/health`);
      expect(health.status).toBe(200);

      const alices = (await storedMemories(server.base, alice, (texts) => texts.length >= 10)).map((m) => m.text);
      for (let i = 0; i < 5; i++) expect(alices).toContain(`alice remembers the lighthouse ${i}`);
      const mallorys = (await storedMemories(server.base, mallory, (texts) => texts.length >= 4)).map((m) => m.text);
      // Stored safely: NUL and lone surrogates replaced (U+FFFD), the huge message cut to the documented cap.
      expect(mallorys).toContain("nul \ufffd byte in the middle");
      expect(mallorys.some((t) => t.startsWith("lone \ufffd surrogate"))).toBe(true);
      expect(mallorys.join("").length).toBeLessThan(40_000);
      const [pending] = await db.query<{ n: number }>(
        "select count(*)::int as n from memory_outbox where user_id = any($1::uuid[])",
        [[mallory.userId, alice.userId]],
      );
      expect(pending?.n).toBe(0);
    } finally {
      server.child.kill("SIGTERM");
      await server.finished;
    }
  });
});
