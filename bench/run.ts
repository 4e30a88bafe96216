/**
 * `npm run bench`: Perpetual against a fake OpenAI upstream, compared with calling that upstream directly, in the
 * same run on this machine. Production wiring (PostgreSQL 15 started here) when available, else embedded PGlite.
 * Auth, usage logging and cost are on, as in production. Prints a table and writes bench/results.json.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import autocannon from "autocannon";
import { Agent, request } from "undici";
import { loadConfig } from "../src/config";
import { type Database, migrate, openPglite, openPostgres } from "../src/db";
import { createApiKey, createUser } from "../src/identity";
import { COLLECTED_WITHIN_QUIET_MS } from "../src/idle-collector";
import { collectionName } from "../src/memory";
import { EmbeddedMemoryStore } from "../src/memory/embedded-store";
import { ProviderKeys } from "../src/provider-keys";
import { createVault } from "../src/vault";
import { parseMasterKey } from "../src/vault/master-keys";
import { SyntheticMemories } from "./synthetic-memories";

// biome-ignore lint/style/noCommonJs: scripts/services.js is shared with the CommonJS test runner
const services = require("../scripts/services") as {
  startPostgres(dir: string): Promise<{ url: string; stop(): void }>;
  freePort(): Promise<number>;
  log(message: string): void;
};

// biome-ignore lint/style/noCommonJs: the server's V8 flags, shared with npm start (CommonJS)
const runtime = require("../scripts/node-runtime") as {
  SERVER_NODE_FLAGS: string[];
  SERVER_ENV: Record<string, string>;
};

const ROOT = join(__dirname, "..");
const DURATION = Number(process.env.BENCH_SECONDS ?? 10);
const USER_MEMORIES = Number(process.env.BENCH_USER_MEMORIES ?? 100_000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Long enough for the server's idle collection to have run (and the collection itself a few seconds). */
const QUIET_SPELL_MS = COLLECTED_WITHIN_QUIET_MS + 3_000;

function spawnNode(args: string[], env: Record<string, string>): { child: ChildProcess; output: () => string } {
  const { NODE_OPTIONS: _ignored, ...inherited } = process.env;
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...inherited, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  // Keep the start of the output only: a server at info level logs a line per request.
  const keep = (d: Buffer) => {
    if (out.length < 64_000) out += d.toString();
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  return { child, output: () => out };
}

async function waitFor(output: () => string, pattern: RegExp): Promise<RegExpMatchArray> {
  for (let i = 0; i < 600; i++) {
    const match = output().match(pattern);
    if (match) return match;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${pattern}:\n${output()}`);
}

/** Ready when /health answers (the "listening" line is not logged below info). */
async function waitForHealth(url: string, output: () => string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const up = await fetch(url).then(
      (r) => r.ok,
      () => false,
    );
    if (up) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${url}:\n${output()}`);
}

function rssMb(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: Math.round(kb("VmRSS") / 1024), peak: Math.round(kb("VmHWM") / 1024) };
}

interface Load {
  url: string;
  headers: Record<string, string>;
  body: string;
  connections: number;
  overallRate?: number;
}

async function load({ url, headers, body, connections, overallRate }: Load) {
  const result = await autocannon({
    url,
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
    connections,
    duration: DURATION,
    overallRate,
    timeout: 30,
  });
  return {
    rps: Math.round(result.requests.average),
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
  };
}

async function main() {
  const work = mkdtempSync(join(tmpdir(), "perpetual-bench-"));
  const children: ChildProcess[] = [];
  let postgres: { url: string; stop(): void } | undefined;
  let redis: { url: string; stop(): void } | undefined;
  try {
    const production = existsSync("/usr/lib/postgresql/15/bin/initdb");
    if (production) postgres = await services.startPostgres(work);
    // Limits on, as in production: the Redis Lua limiter on every request (in-process counters without Redis).
    if (production) redis = await services.startRedis();
    const wiring = production
      ? "production (PostgreSQL 15 pooled, Redis rate limiter)"
      : "embedded (PGlite, in-process rate limiter)";
    services.log(`wiring: ${wiring}`);

    execFileSync("npm", ["run", "build", "--silent"], { cwd: ROOT, stdio: "inherit" });
    const upstreamProcess = spawnNode(["--import", "tsx", "bench/upstream.ts"], {});
    children.push(upstreamProcess.child);
    const [upstreamUrl] = await waitFor(upstreamProcess.output, /http:\/\/127\.0\.0\.1:\d+\/v1/);
    const passthroughProcess = spawnNode(["--import", "tsx", "bench/passthrough.ts", upstreamUrl!], {});
    children.push(passthroughProcess.child);
    const [passthroughUrl] = await waitFor(passthroughProcess.output, /http:\/\/127\.0\.0\.1:\d+\/v1/);

    const masterKey = randomBytes(32).toString("base64");
    const dataDir = join(work, "data");
    const db: Database = postgres ? openPostgres({ url: postgres.url, poolSize: 2 }) : await openPglite({ dataDir });
    await migrate(db);
    // Every request is counted and checked, but the bench's own tier has a budget beyond what the bench sends, so
    // nothing is refused (a key's own limits can only narrow its user's tier, never widen it).
    const configDir = join(work, "config");
    cpSync(join(ROOT, "config"), configDir, { recursive: true });
    const tiersFile = join(configDir, "tiers.json");
    const tiers = JSON.parse(readFileSync(tiersFile, "utf8"));
    tiers.tiers.bench = {
      requests_per_minute: 100_000_000,
      requests_per_day: 100_000_000,
      tokens_per_minute: null,
      tokens_per_day: null,
    };
    writeFileSync(tiersFile, JSON.stringify(tiers));
    const user = await createUser(db, "bench@example.com", "bench");
    const apiKey = (await createApiKey(db, user.id)).key;
    await new ProviderKeys(db, createVault(parseMasterKey(masterKey, "bench")), new Set(["openai"])).add(
      user.id,
      "openai",
      "sk-bench-upstream-key",
    );
    await db.close();
    // The bench user's memory: USER_MEMORIES synthetic memories in the embedded store the server opens, so every
    // memory-on request recalls from a store of that size (BENCH_USER_MEMORIES, default 100,000).
    const seedStarted = performance.now();
    const synthetic = new SyntheticMemories();
    const collection = collectionName(loadConfig({ NODE_ENV: "production" }), synthetic.embedder);
    const seeded = new EmbeddedMemoryStore(dataDir, collection, synthetic.embedder.dimensions);
    await seeded.ready();
    await synthetic.load(seeded.forUser(user.id), user.id, USER_MEMORIES);
    await seeded.close();
    services.log(`seeded ${USER_MEMORIES} memories in ${Math.round((performance.now() - seedStarted) / 1000)} s`);

    const port = await services.freePort();
    // BENCH_PROFILE=dir writes a V8 CPU profile of the server there (open it in Chrome DevTools).
    const profile = process.env.BENCH_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
    const server = spawnNode([...profile, ...runtime.SERVER_NODE_FLAGS, "dist/main.js"], {
      ...runtime.SERVER_ENV,
      NODE_ENV: "production",
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? "info",
      LOG_FORMAT: "json",
      API_HOST: "127.0.0.1",
      API_PORT: String(port),
      DATA_DIR: dataDir,
      API_KEY_ENCRYPTION_KEY: masterKey,
      OPENAI_BASE_URL: upstreamUrl!,
      AUTH_CACHE_TTL_SECONDS: "5",
      CONFIG_DIR: configDir,
      // One process by design: the embedded store, and Redis limits when Redis runs here (production guard).
      MEMORY_STORE: "embedded",
      ...(postgres ? { DATABASE_URL: postgres.url } : {}),
      ...(redis ? { REDIS_URL: redis.url } : { RATE_LIMIT_STORE: "memory" }),
    });
    children.push(server.child);
    await waitForHealth(`http://127.0.0.1:${port}/health`, server.output);
    // Idle: started (the store's log replayed) and left quiet long enough for its idle collection.
    await sleep(QUIET_SPELL_MS);
    const idle = rssMb(server.child.pid!);
    const perpetual = `http://127.0.0.1:${port}/v1/chat/completions`;
    const direct = `${upstreamUrl}/chat/completions`;
    const passthrough = `${passthroughUrl}/chat/completions`;
    const auth = { authorization: `Bearer ${apiKey}` };
    const body = (stream: boolean, model = "gpt-4o") =>
      JSON.stringify({ model, messages: [{ role: "user", content: "Say something short." }], stream });

    const memoryOff = { ...auth, "x-perpetual-memory": "off" };

    // Warm-up: JIT, connection pools, auth cache.
    await load({ url: perpetual, headers: auth, body: body(false), connections: 10 });

    const rows: Record<string, unknown>[] = [];
    for (const stream of [false, true]) {
      const kind = stream ? "streaming" : "non-streaming";
      const at = (url: string, headers: Record<string, string>, overallRate?: number) =>
        load({ url, headers, body: body(stream), connections: 50, overallRate });
      const directMax = await at(direct, {});
      const passthroughMax = await at(passthrough, {});
      const offMax = await at(perpetual, memoryOff);
      const onMax = await at(perpetual, auth);
      // Added latency at a light load, two ways. Paced: one request every 50 ms (20 req/s), each timed to its first
      // body byte: what one request pays for going through Perpetual. Burst: autocannon's 20 req/s, which sends the
      // second's 20 requests at once: what a burst pays (they queue for the same event loop and the same store thread).
      const paced = (url: string, headers: Record<string, string>) => pacedLoad(url, headers, body(stream));
      const directPaced = await paced(direct, {});
      const passthroughPaced = await paced(passthrough, {});
      const offPaced = await paced(perpetual, memoryOff);
      const onPaced = await paced(perpetual, auth);
      const directLight = await at(direct, {}, 20);
      const passthroughLight = await at(passthrough, {}, 20);
      const offLight = await at(perpetual, memoryOff, 20);
      const onLight = await at(perpetual, auth, 20);
      rows.push({
        kind,
        direct_rps: directMax.rps,
        passthrough_rps: passthroughMax.rps,
        memory_off_rps: offMax.rps,
        memory_on_rps: onMax.rps,
        off_to_passthrough: ratio(offMax.rps, passthroughMax.rps),
        on_to_off: ratio(onMax.rps, offMax.rps),
        off_to_direct: ratio(offMax.rps, directMax.rps),
        passthrough_added_p50_ms_paced: round(passthroughPaced.p50 - directPaced.p50),
        added_p50_ms_off_paced: round(offPaced.p50 - directPaced.p50),
        added_p99_ms_off_paced: round(offPaced.p99 - directPaced.p99),
        added_p50_ms_on_paced: round(onPaced.p50 - directPaced.p50),
        added_p99_ms_on_paced: round(onPaced.p99 - directPaced.p99),
        passthrough_added_p50_ms_burst20: round(passthroughLight.p50 - directLight.p50),
        added_p50_ms_off_burst20: round(offLight.p50 - directLight.p50),
        added_p99_ms_off_burst20: round(offLight.p99 - directLight.p99),
        added_p50_ms_on_burst20: round(onLight.p50 - directLight.p50),
        added_p99_ms_on_burst20: round(onLight.p99 - directLight.p99),
        failures:
          [offMax, onMax, offLight, onLight].reduce((n, r) => n + r.errors + r.non2xx, 0) +
          [offPaced, onPaced].reduce((n, r) => n + r.failures, 0),
      });
    }

    // The response cache on a repeated-query workload: 20 distinct deterministic questions asked over and over
    // (memory off), so after the first round every request is a hit. Throughput, paced latency and hit rate.
    const cacheHeaders = { ...memoryOff, "x-perpetual-cache": "exact" };
    const questions = Array.from({ length: 20 }, (_, i) =>
      JSON.stringify({ model: "gpt-4o", temperature: 0, messages: [{ role: "user", content: `Question ${i}?` }] }),
    );
    for (const question of questions) await pacedLoad(perpetual, cacheHeaders, question, 1);
    const cacheMax = await autocannon({
      url: perpetual,
      connections: 50,
      duration: DURATION,
      requests: questions.map((body) => ({
        method: "POST",
        headers: { "content-type": "application/json", ...auth, ...cacheHeaders },
        body,
      })),
    });
    const cachePaced = await pacedLoad(perpetual, cacheHeaders, questions[3]!);
    const lookups = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
    const counted = (outcome: string) => metricValue(lookups, `perpetual_cache_lookups_total{outcome="${outcome}"}`, 0);
    const responseCache = {
      hit_rps: Math.round(cacheMax.requests.average),
      hit_to_memory_off: ratio(cacheMax.requests.average, (rows[0] as { memory_off_rps: number }).memory_off_rps),
      hit_p50_ms_paced: cachePaced.p50,
      hit_p99_ms_paced: cachePaced.p99,
      hit_rate: ratio(counted("exact"), counted("exact") + counted("miss")),
      failures: cacheMax.errors + cacheMax.non2xx + cachePaced.failures,
    };

    const hugeRequest = await healthDuringHugeRequest(perpetual, auth, `http://127.0.0.1:${port}/health`);

    // Slow streams (the upstream's slow-stream model) opened all at once, memory off, through the pass-through and
    // through Perpetual: every stream must complete, and the latency stay near the pass-through's.
    const streams = (url: string, headers: Record<string, string>, model: string) =>
      load({ url, headers, body: body(true, model), connections: 2000 });
    const passthroughStreams = await streams(passthrough, {}, "slow-stream");
    const concurrent = await streams(perpetual, memoryOff, "openai/slow-stream");
    const memory = rssMb(server.child.pid!);
    const heap = await serverHeap(`http://127.0.0.1:${port}/metrics`);
    // Then quiet: what a server gives back once the traffic stops (src/idle-collector.ts).
    await sleep(QUIET_SPELL_MS);
    const quiet = rssMb(server.child.pid!);
    const results = {
      date: new Date().toISOString(),
      wiring,
      duration_seconds_per_run: DURATION,
      bench_user_memories: USER_MEMORIES,
      runs: rows,
      concurrent_streams: {
        connections: 2000,
        completed_per_second: concurrent.rps,
        p99_ms: concurrent.p99,
        passthrough_p99_ms: passthroughStreams.p99,
        p99_to_passthrough: ratio(concurrent.p99, passthroughStreams.p99),
        errors: concurrent.errors,
        timeouts: concurrent.timeouts,
        non2xx: concurrent.non2xx,
      },
      response_cache: responseCache,
      huge_request: hugeRequest,
      server_rss_mb: memory.rss,
      server_peak_rss_mb: memory.peak,
      server_rss_quiet_mb: quiet.rss,
      server_rss_idle_at_start_mb: idle.rss,
      server_heap: heap,
      targets: {
        off_to_passthrough: 0.5,
        on_to_off: 0.8,
        added_p50_ms_paced: 2,
        added_p99_ms_paced: 10,
        concurrent_streams: 2000,
        p99_to_passthrough: 2,
        health_during_huge_request_ms: 100,
        rss_mb: 250,
        idle_rss_mb: 150,
      },
    };
    console.table(rows);
    console.table([
      {
        ...results.concurrent_streams,
        server_rss_mb: memory.rss,
        server_peak_rss_mb: memory.peak,
        server_rss_quiet_mb: quiet.rss,
        server_rss_idle_at_start_mb: idle.rss,
        wiring,
      },
    ]);
    console.table([responseCache]);
    console.table([hugeRequest]);
    writeFileSync(join(ROOT, "bench", "results.json"), `${JSON.stringify(results, null, 2)}\n`);
    services.log("wrote bench/results.json");
  } finally {
    for (const child of children) child.kill("SIGTERM");
    await sleep(500);
    postgres?.stop();
    redis?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

const round = (n: number) => Math.round(n * 100) / 100;

/** What the server's main thread holds after the bench (its own metrics): V8 heap reserved and used, and memory
 * outside the heap (Buffers, typed arrays), in MB — the rest of its RSS is code, threads and the allocator's slack. */
async function serverHeap(metricsUrl: string) {
  const text = await fetch(metricsUrl).then((r) => r.text());
  const mb = (name: string) => Math.round(metricValue(text, `perpetual_${name}`) / 2 ** 20);
  return {
    heap_total_mb: mb("nodejs_heap_size_total_bytes"),
    heap_used_mb: mb("nodejs_heap_size_used_bytes"),
    external_mb: mb("nodejs_external_memory_bytes"),
  };
}

/** A sample's value in Prometheus text exposition (`series` as written, labels included), else `absent`. */
function metricValue(text: string, series: string, absent = Number.NaN): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? absent : Number(line.slice(series.length + 1));
}

const pacedAgent = new Agent({ keepAliveTimeout: 30_000, connections: 16 });

/**
 * One request every 50 ms for the run's duration (started on schedule whether or not earlier ones finished), each
 * timed from its start to its first body byte (time to first token, for a stream). Percentiles in ms.
 */
async function pacedLoad(url: string, headers: Record<string, string>, body: string, count = DURATION * 20) {
  const times: number[] = [];
  let failures = 0;
  const one = async () => {
    const started = performance.now();
    try {
      const res = await request(url, {
        method: "POST",
        dispatcher: pacedAgent,
        headers: { "content-type": "application/json", ...headers },
        body,
      });
      let firstByte: number | undefined;
      for await (const _chunk of res.body) firstByte ??= performance.now() - started;
      if (res.statusCode !== 200 || firstByte === undefined) failures++;
      else times.push(firstByte);
    } catch {
      failures++;
    }
  };
  const pending: Promise<void>[] = [];
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    await sleep(Math.max(0, start + i * 50 - performance.now()));
    pending.push(one());
  }
  await Promise.all(pending);
  times.sort((a, b) => a - b);
  const at = (p: number) => round(times[Math.min(times.length - 1, Math.floor(times.length * p))] ?? 0);
  return { p50: at(0.5), p99: at(0.99), failures };
}
const ratio = (a: number, b: number) => Math.round((a / b) * 1000) / 1000;

/**
 * A 9 MB memory-on chat request, three times, with /health asked every 10 ms meanwhile: the slowest /health answer.
 * The body is serialized before the probes start, so they time the server, not this process's own JSON.stringify.
 */
async function healthDuringHugeRequest(url: string, headers: Record<string, string>, health: string) {
  const content = "lorem ipsum dolor sit amet ".repeat(350_000); // ≈ 9.4 MB
  const requestBody = Buffer.from(JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content }] }));
  const tries = [];
  for (let i = 0; i < 3; i++) tries.push(await probedRequest(url, headers, requestBody, health));
  return {
    status: Math.max(...tries.map((t) => t.status)),
    request_ms: Math.max(...tries.map((t) => t.requestMs)),
    health_probes: tries.reduce((n, t) => n + t.probes, 0),
    slowest_health_ms: round(Math.max(...tries.map((t) => t.slowestHealthMs))),
  };
}

async function probedRequest(url: string, headers: Record<string, string>, requestBody: Buffer, health: string) {
  let done = false;
  let slowestHealthMs = 0;
  let probes = 0;
  const probe = (async () => {
    while (!done) {
      const started = performance.now();
      await fetch(health).then((r) => r.arrayBuffer());
      slowestHealthMs = Math.max(slowestHealthMs, performance.now() - started);
      probes++;
      await sleep(10);
    }
  })();
  const started = performance.now();
  const res = await fetch(url, {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
    body: requestBody,
  });
  await res.arrayBuffer();
  const requestMs = Math.round(performance.now() - started);
  await sleep(1_000); // the write-back of the exchange happens after the answer
  done = true;
  await probe;
  return { status: res.status, requestMs, probes, slowestHealthMs };
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
