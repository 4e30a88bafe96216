import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { IdleCollector } from "../../src/idle-collector";

const ROOT = join(__dirname, "..", "..");
const { SERVER_NODE_FLAGS } = require("../../scripts/node-runtime") as { SERVER_NODE_FLAGS: string[] };

/** The collector's answers to `n` checks in a row. */
const checks = (idle: IdleCollector, n: number) => Array.from({ length: n }, () => idle.check());
const QUIET = [false, false, false, false, false, true];

describe("Idle collector", () => {
  test("When work stops, then one full collection runs after six quiet checks in a row; never while work is in flight, never twice without new work", () => {
    const runs: unknown[] = [];
    const idle = new IdleCollector(
      (options) => runs.push(options),
      () => 100 * 2 ** 20,
    );
    // Loading the application leaves garbage: once quiet long enough, it is collected, once.
    expect(checks(idle, 6)).toEqual(QUIET);
    expect(checks(idle, 6)).toEqual(Array(6).fill(false));
    // A long request (a stream): no collection while it is in flight, however many checks pass.
    idle.begin();
    expect(checks(idle, 8)).toEqual(Array(8).fill(false));
    idle.end();
    expect(checks(idle, 6)).toEqual(QUIET);
    // Steady traffic, or lulls shorter than six checks: the quiet count starts over each time work begins.
    for (let period = 0; period < 10; period++) {
      idle.begin();
      idle.end();
      expect(checks(idle, 1 + (period % 6))).not.toContain(true);
    }
    idle.begin();
    idle.end();
    expect(checks(idle, 7)).toEqual([false, ...QUIET]);
    expect(runs).toEqual(Array(3).fill({ type: "major", execution: "async", flavor: "last-resort" }));
  });

  test("When the heap has barely grown since the last collection (health probes on a quiet server), then none runs", async () => {
    let heap = 60 * 2 ** 20;
    let runs = 0;
    const idle = new IdleCollector(
      async () => {
        runs++;
        heap = 50 * 2 ** 20; // what the collection leaves
      },
      () => heap,
    );
    expect(checks(idle, 6)).toEqual(QUIET);
    await Promise.resolve();
    // A probe every half minute: a few kilobytes each time.
    for (let probe = 0; probe < 10; probe++) {
      idle.begin();
      idle.end();
      heap += 4096;
      expect(checks(idle, 7)).not.toContain(true);
    }
    // A burst leaves 30 MB more: once quiet, it is collected.
    idle.begin();
    idle.end();
    heap += 30 * 2 ** 20;
    expect(checks(idle, 7)).toEqual([false, ...QUIET]);
    expect(runs).toBe(2);
  });

  test("When the process lacks --expose-gc, then the collector does nothing", () => {
    const idle = new IdleCollector(undefined);
    expect(checks(idle, 12)).not.toContain(true);
    idle.start();
    idle.stop();
  });

  test("When the server's flags are used, then a quiet spell after a burst gives the heap's pages back to the system", () => {
    expect(SERVER_NODE_FLAGS).toContain("--expose-gc");
    // A child process with the server's V8 flags: a burst leaves ~200 MB of garbage in the heap, then quiet checks.
    const script = `
      const { IdleCollector } = require("./src/idle-collector.ts");
      const idle = new IdleCollector();
      const quiet = () => { for (let i = 0; i < 7; i++) if (idle.check()) return true; return false; };
      quiet(); // the load's garbage: collected first, so the burst is measured alone
      setTimeout(() => {
        idle.begin();
        let kept = [];
        for (let i = 0; i < 2_000_000; i++) { kept.push({ i, text: "x".repeat(i % 64) }); if (kept.length > 400_000) kept = []; }
        kept = undefined;
        idle.end();
        const { heapTotal: before, rss: rssBefore } = process.memoryUsage();
        if (!quiet()) throw new Error("a quiet spell did not collect");
        const wait = () => {
          const { heapTotal: after, rss } = process.memoryUsage();
          if (after < before / 2) process.stdout.write(JSON.stringify({ before, after, freed: rssBefore - rss }));
          else setTimeout(wait, 20);
        };
        wait();
      }, 100);`;
    const out = execFileSync(process.execPath, [...SERVER_NODE_FLAGS, "--require", "tsx/cjs", "-e", script], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 60_000,
    });
    const { before, after, freed } = JSON.parse(out) as { before: number; after: number; freed: number };
    expect(before).toBeGreaterThan(80 * 2 ** 20);
    expect(after).toBeLessThan(before / 2);
    // Resident memory follows: a regular full collection shrinks the heap but keeps the freed pages pooled.
    expect(freed).toBeGreaterThan((before - after) / 2);
  });
});
