import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { IdleCollector } from "../../src/idle-collector";

const ROOT = join(__dirname, "..", "..");
const { SERVER_NODE_FLAGS } = require("../../scripts/node-runtime") as { SERVER_NODE_FLAGS: string[] };

describe("Idle collector", () => {
  test("When work stops, then one full collection runs after a quiet check period; never while work is in flight, never twice without new work", () => {
    const runs: unknown[] = [];
    const idle = new IdleCollector(
      (options) => runs.push(options),
      () => 100 * 2 ** 20,
    );
    // Loading the application leaves garbage: the first quiet check collects it.
    expect(idle.check()).toBe(true);
    expect(idle.check()).toBe(false);
    // A long request (a stream): no collection while it is in flight, however many checks pass.
    idle.begin();
    expect([idle.check(), idle.check(), idle.check()]).toEqual([false, false, false]);
    idle.end();
    expect(idle.check()).toBe(true);
    // Steady traffic: work begins in every period, so no check finds the process quiet.
    for (let period = 0; period < 5; period++) {
      idle.begin();
      idle.end();
      expect(idle.check()).toBe(false);
    }
    expect([idle.check(), idle.check()]).toEqual([true, false]);
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
    expect(idle.check()).toBe(true);
    await Promise.resolve();
    // A probe every period: a few kilobytes each time.
    for (let probe = 0; probe < 10; probe++) {
      idle.begin();
      idle.end();
      heap += 4096;
      idle.check();
      expect(idle.check()).toBe(false);
    }
    // A burst leaves 30 MB more: the next quiet check collects it.
    idle.begin();
    idle.end();
    heap += 30 * 2 ** 20;
    expect([idle.check(), idle.check()]).toEqual([false, true]);
    expect(runs).toBe(2);
  });

  test("When the process lacks --expose-gc, then the collector does nothing", () => {
    const idle = new IdleCollector(undefined);
    expect(idle.check()).toBe(false);
    idle.start();
    idle.stop();
  });

  test("When the server's flags are used, then a quiet check after a burst gives the heap's pages back to the system", () => {
    expect(SERVER_NODE_FLAGS).toContain("--expose-gc");
    // A child process with the server's V8 flags: a burst leaves ~200 MB of garbage in the heap, then one check.
    const script = `
      const { IdleCollector } = require("./src/idle-collector.ts");
      const idle = new IdleCollector();
      idle.check(); // the load's garbage: collected first, so the burst is measured alone
      setTimeout(() => {
        idle.begin();
        let kept = [];
        for (let i = 0; i < 2_000_000; i++) { kept.push({ i, text: "x".repeat(i % 64) }); if (kept.length > 400_000) kept = []; }
        kept = undefined;
        idle.end();
        const { heapTotal: before, rss: rssBefore } = process.memoryUsage();
        idle.check(); // work began since the last check: not quiet yet
        if (!idle.check()) throw new Error("a quiet check did not collect");
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
