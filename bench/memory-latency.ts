/**
 * `npm run bench:memory-latency`: what recall adds to a request on the embedded store with 1M memories in total
 * and 100k of them belonging to one user, and how fast chunks are written. Recall is measured through
 * MemoryService.recall, the pipeline's own call (embed the query, hybrid search, dedupe, budget, format).
 * BENCH_MEMORIES scales the total (default 1,000,000; the heavy user keeps a tenth).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../src/config";
import type { Database } from "../src/db";
import { createLogger } from "../src/log";
import { MemoryService } from "../src/memory";
import { EmbeddedMemoryStore } from "../src/memory/embedded-store";
import { createMetrics } from "../src/metrics";
import { SyntheticMemories } from "./synthetic-memories";

const TOTAL = Number(process.env.BENCH_MEMORIES ?? 1_000_000);
const HEAVY = Math.round(TOTAL / 10);
const PER_LIGHT_USER = 1_000;
const QUERIES = 1_000;

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

async function main() {
  const synthetic = new SyntheticMemories();
  const { embedder } = synthetic;
  const dir = mkdtempSync(join(tmpdir(), "perpetual-memory-bench-"));
  const store = new EmbeddedMemoryStore(dir, "bench", embedder.dimensions);
  await store.ready();

  const heavyUser = "00000000-0000-4000-8000-000000000001";
  const lightUsers = Array.from(
    { length: Math.ceil((TOTAL - HEAVY) / PER_LIGHT_USER) },
    (_, i) => `00000000-0000-4000-8000-${(i + 2).toString(16).padStart(12, "0")}`,
  );

  // Bulk load: chunk, embed, BM25, append (fsynced per batch of 1,000) and index.
  const loadStarted = performance.now();
  const load = (userId: string, count: number) => synthetic.load(store.forUser(userId), userId, count);
  await load(heavyUser, HEAVY);
  for (const user of lightUsers) await load(user, PER_LIGHT_USER);
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  const loaded = HEAVY + lightUsers.length * PER_LIGHT_USER;

  // As the outbox writes: a claimed batch of 50 exchanges (a user turn and a reply each) stored at once, so the
  // store group-commits them (one fsync per batch, not per exchange).
  const exchanges = 2_000;
  const writeStarted = performance.now();
  for (let batch = 0; batch < exchanges; batch += 50) {
    await Promise.all(
      Array.from({ length: 50 }, (_, k) => {
        const i = batch + k;
        const user = lightUsers[i % lightUsers.length]!;
        return store
          .forUser(user)
          .upsert([synthetic.memory(user, 10_000 + 2 * i), synthetic.memory(user, 10_001 + 2 * i)]);
      }),
    );
  }
  const exchangeChunksPerSecond = (2 * exchanges) / ((performance.now() - writeStarted) / 1000);

  // A long recall timeout, so the true latency is measured; answers slower than the production default (300 ms)
  // are counted: in production they would be answered without memory.
  const config = loadConfig({ NODE_ENV: "test", DATA_DIR: dir, MEMORY_RECALL_TIMEOUT_MS: "10000" });
  const memory = new MemoryService({
    store,
    embedder,
    db: undefined as unknown as Database, // recall never touches the database
    logger: createLogger({ level: "error", format: "json" }),
    metrics: createMetrics({ usagePending: () => 0 }),
    settings: config.memory,
  });
  const controls = { mode: "on" as const, scope: "user" as const, budgetTokens: config.memory.tokenBudget };

  async function measure(users: () => string) {
    const times: number[] = [];
    let used = 0;
    for (let i = 0; i < QUERIES + 50; i++) {
      const messages = [
        { role: "system", content: "You are a helpful assistant." },
        { role: "user", content: `${synthetic.sentence()}?` },
      ];
      const started = performance.now();
      const recall = await memory.recall(users(), messages, controls, null);
      const elapsed = performance.now() - started;
      // "irrelevant" is a measured answer too (the gate found nothing relevant); a failure is not.
      if (recall.status !== "ok" && recall.status !== "irrelevant") throw new Error(`recall answered ${recall.status}`);
      if (i >= 50) {
        times.push(elapsed); // the first 50 warm the JIT
        used += recall.used;
      }
    }
    times.sort((a, b) => a - b);
    const overDefaultTimeout = times.filter((t) => t > 300).length;
    return {
      p50: percentile(times, 0.5),
      p99: percentile(times, 0.99),
      memoriesUsed: used / QUERIES,
      overDefaultTimeout,
    };
  }

  const rssWithStore = process.memoryUsage().rss;
  const heavy = await measure(() => heavyUser);
  const light = await measure(() => lightUsers[Math.floor(synthetic.random() * lightUsers.length)]!);
  await store.close();

  const footprint = storeFootprint(dir);
  rmSync(dir, { recursive: true, force: true });

  const ms = (x: number) => `${x.toFixed(2)} ms`;
  console.log(`\nEmbedded memory store: ${loaded.toLocaleString("en")} memories, ${lightUsers.length + 1} users`);
  console.log("| user | memories | recall p50 | recall p99 | over 300 ms | memories injected (avg) |");
  console.log("|---|---:|---:|---:|---:|---:|");
  console.log(
    `| heavy | ${HEAVY.toLocaleString("en")} | ${ms(heavy.p50)} | ${ms(heavy.p99)} | ${heavy.overDefaultTimeout} | ${heavy.memoriesUsed.toFixed(1)} |`,
  );
  console.log(
    `| typical | ${PER_LIGHT_USER.toLocaleString("en")} | ${ms(light.p50)} | ${ms(light.p99)} | ${light.overDefaultTimeout} | ${light.memoriesUsed.toFixed(1)} |`,
  );
  console.log(`\nTarget: p50 ≤ 5 ms, p99 ≤ 25 ms for the heavy user.`);
  console.log(
    `Bulk load (embed + BM25 + fsynced append + index, 1,000 per batch): ${Math.round(loaded / loadSeconds).toLocaleString("en")} chunks/s`,
  );
  console.log(
    `Outbox-style writes (batches of 50 exchanges of 2 chunks, group-committed): ${Math.round(exchangeChunksPerSecond).toLocaleString("en")} chunks/s`,
  );
  console.log(
    // The store lives in a worker thread of this process: RSS counts it, this thread's heap does not.
    `Process RSS with the store open: ${Math.round(rssWithStore / 2 ** 20)} MB`,
  );
  console.log(
    `Reopened in a fresh process (log replayed) in ${footprint.seconds.toFixed(1)} s; the store's resident memory: ` +
      `${Math.round(footprint.bytes / 2 ** 20)} MB, ${Math.round((footprint.bytes / 2 ** 20) * (1_000_000 / (loaded + 2 * exchanges)))} MB per million memories`,
  );
}

/**
 * What the store itself holds: a fresh process's RSS before and after it opens (replays) the log, so neither the
 * load generator's garbage nor memory a closed store's thread left to the allocator is counted.
 */
function storeFootprint(dir: string): { bytes: number; seconds: number } {
  const child = spawnSync(process.execPath, [...process.execArgv, __filename, FOOTPRINT, dir], { encoding: "utf8" });
  if (child.status !== 0) throw new Error(`the footprint process failed: ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split("\n").at(-1)!);
}

async function openAndMeasure(dir: string) {
  const { dimensions } = new SyntheticMemories().embedder;
  const rssBefore = process.memoryUsage().rss;
  const started = performance.now();
  const store = new EmbeddedMemoryStore(dir, "bench", dimensions);
  await store.ready();
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ bytes: process.memoryUsage().rss - rssBefore, seconds }));
  await store.close();
}

const FOOTPRINT = "--footprint";
const footprintDir = process.argv[process.argv.indexOf(FOOTPRINT) + 1];
(process.argv.includes(FOOTPRINT) ? openAndMeasure(footprintDir!) : main()).catch((error) => {
  console.error(error);
  process.exit(1);
});
