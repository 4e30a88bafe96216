#!/usr/bin/env node
/**
 * `npm test`: starts a throwaway PostgreSQL 15 cluster and a Redis server on free loopback ports (and installs
 * Debian's chromium for page checks when missing), runs Jest
 * against them, stops them, and prints a closing `N passed, N failed` line (CI reads that, not Jest's summary).
 * Extra arguments go to Jest: `npm test -- tests/config.test.js -t "When"`.
 */
const { spawn, spawnSync } = require("node:child_process");
const { existsSync, mkdtempSync, readFileSync, rmSync, chmodSync } = require("node:fs");
const { tmpdir } = require("node:os");
const { join } = require("node:path");
const { ensureTools, log, startPostgres, startRedis } = require("../scripts/services");
const { supportedNode } = require("../scripts/node-runtime");

function runJest(env, args, resultFile) {
  return new Promise((resolve) => {
    const jest = require.resolve("jest/bin/jest");
    const child = spawn(process.execPath, [jest, "--json", `--outputFile=${resultFile}`, ...args], {
      stdio: ["ignore", "ignore", "inherit"],
      env,
    });
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

function summarize(resultFile) {
  if (!existsSync(resultFile)) return { passed: 0, failed: 1 };
  const result = JSON.parse(readFileSync(resultFile, "utf8"));
  // A suite that fails to load (syntax error, failing beforeAll) has no failed tests of its own: count it.
  return { passed: result.numPassedTests, failed: result.numFailedTests + result.numRuntimeErrorTestSuites };
}

function prepareWordVectors() {
  const tsx = require.resolve("tsx/cli");
  const result = spawnSync(process.execPath, [tsx, join(__dirname, "..", "scripts", "prepare-word-vectors.ts")], {
    stdio: "inherit",
  });
  if (result.status !== 0) throw new Error("could not prepare the built-in embedder's word vectors");
}

async function main() {
  // The suite runs on a Node that package.json's engines allows (installed from the npm registry when this one is
  // older): the same rule as npm start.
  const node = supportedNode();
  if (node !== process.execPath) {
    const rerun = spawnSync(node, [__filename, ...process.argv.slice(2)], { stdio: "inherit" });
    process.exit(rerun.status ?? 1);
  }
  const workDir = mkdtempSync(join(tmpdir(), "perpetual-test-"));
  chmodSync(workDir, 0o755);
  const stops = [];
  const cleanup = () => {
    for (const stop of stops.reverse()) {
      try {
        stop();
      } catch (error) {
        log(`cleanup: ${error.message}`);
      }
    }
    stops.length = 0;
    rmSync(workDir, { recursive: true, force: true });
  };
  process.on("SIGINT", () => {
    cleanup();
    process.exit(130);
  });
  let exitCode = 1;
  try {
    ensureTools();
    prepareWordVectors();
    const postgres = await startPostgres(workDir);
    stops.push(postgres.stop);
    const redis = await startRedis();
    stops.push(redis.stop);
    const resultFile = join(workDir, "jest-results.json");
    const env = {
      ...process.env,
      NODE_ENV: "test",
      // PGlite loads its WASM with a dynamic import, which Jest's module sandbox only allows with this flag.
      NODE_OPTIONS:
        `${process.env.NODE_OPTIONS ?? ""} --experimental-vm-modules --no-warnings=ExperimentalWarning`.trim(),
      TEST_DATABASE_URL: postgres.url,
      TEST_REDIS_URL: redis.url,
    };
    const jestCode = await runJest(env, process.argv.slice(2), resultFile);
    const { passed, failed } = summarize(resultFile);
    console.log(`${passed} passed, ${failed} failed`);
    exitCode = jestCode !== 0 || failed > 0 || passed === 0 ? 1 : 0;
  } catch (error) {
    log(error.stack ?? String(error));
    console.log("0 passed, 1 failed");
  } finally {
    cleanup();
  }
  process.exit(exitCode);
}

main();
