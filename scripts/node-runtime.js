/**
 * A Node binary that satisfies package.json's `engines`: the running one when it does, otherwise Node 24 (the
 * Node the image ships) from the npm registry's `node-<platform>-<arch>` package, installed once under
 * node_modules/.cache/perpetual. So `npm start` and `npm test` work on a machine whose own Node is older.
 */
const { spawnSync } = require("node:child_process");
const { existsSync, readFileSync } = require("node:fs");
const { join } = require("node:path");

const ROOT = join(__dirname, "..");
const SHIPPED_MAJOR = 24;

/** The lowest version `engines.node` allows (only the ">=X.Y" form is used in package.json). */
function oldestSupported() {
  const range = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).engines.node;
  const match = /^>=\s*(\d+)(?:\.(\d+))?/.exec(range);
  if (!match) throw new Error(`engines.node must read ">=X.Y", not ${range}`);
  return [Number(match[1]), Number(match[2] ?? 0)];
}

function isSupported(version) {
  const [major, minor] = version.replace(/^v/, "").split(".").map(Number);
  const [oldestMajor, oldestMinor] = oldestSupported();
  return major > oldestMajor || (major === oldestMajor && minor >= oldestMinor);
}

function supportedNode() {
  if (isSupported(process.version)) return process.execPath;
  const dir = join(ROOT, "node_modules", ".cache", "perpetual", `node-${SHIPPED_MAJOR}`);
  const name = `node-${process.platform}-${process.arch}`;
  const binary = join(dir, "node_modules", name, "bin", "node");
  if (!existsSync(binary)) {
    process.stderr.write(
      `[node] ${process.version} is older than package.json's engines; installing Node ${SHIPPED_MAJOR} from the npm registry (${name})\n`,
    );
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";
    const args = ["install", "--prefix", dir, "--no-save", "--no-audit", "--no-fund", "--loglevel=error"];
    const result = spawnSync(npm, [...args, `${name}@${SHIPPED_MAJOR}`], { stdio: "inherit" });
    if (result.status !== 0 || !existsSync(binary)) throw new Error(`could not install ${name}@${SHIPPED_MAJOR}`);
  }
  return binary;
}

/**
 * V8 flags of the server process (npm start, the image's ENTRYPOINT, npm run bench). A young generation capped at
 * 16 MB per semi-space: on a large machine V8 grows it to 64 MB, ~150 MB of resident memory under load for no
 * measured throughput (docs/PROXY.md). The old generation allowed to grow to twice what the last full collection
 * left before the next one, not up to four times under a high allocation rate: ~150 MB less resident under load,
 * memory-off throughput unchanged, memory-on within 4 % (docs/PROXY.md). The gc extension, for one full collection
 * after ~30 s of quiet (src/idle-collector.ts): V8 alone leaves a quiet process's heap as large as its last burst
 * left it.
 */
const SERVER_NODE_FLAGS = ["--max-semi-space-size=16", "--heap-growing-percent=100", "--expose-gc"];

/**
 * Environment of the server process (npm start, the image, npm run bench); a value the operator sets wins. glibc
 * raises its mmap threshold after each large block freed, so later large allocations (request bodies, the store's
 * growing columns) come from the heap and stay resident after they are freed; a fixed 128 KiB threshold gives them
 * back. Measured after the bench's load: 588–598 MB resident against 729–752 MB (docs/PROXY.md).
 */
const SERVER_ENV = { MALLOC_MMAP_THRESHOLD_: "131072" };

module.exports = { supportedNode, isSupported, SERVER_NODE_FLAGS, SERVER_ENV };
