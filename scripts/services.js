/**
 * Throwaway PostgreSQL 15 and Redis servers on free loopback ports, for `npm test` and `npm run bench`.
 * Missing server packages are installed with apt-get when running as root, so both work on a fresh machine.
 */
const { spawn, spawnSync, execFileSync } = require("node:child_process");
const { existsSync, chownSync } = require("node:fs");
const { createServer } = require("node:net");
const { join } = require("node:path");

const isRoot = process.getuid?.() === 0;

function log(message) {
  process.stderr.write(`[services] ${message}\n`);
}

function which(command) {
  return spawnSync("sh", ["-c", `command -v ${command}`], { encoding: "utf8" }).stdout.trim() || undefined;
}

let aptUpdated = false;
function aptInstall(...pkgs) {
  const pkg = pkgs.join(" ");
  if (!isRoot) throw new Error(`${pkg} is not installed; install it (apt-get install -y ${pkg}) or run as root`);
  log(`installing ${pkg} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  if (!aptUpdated) {
    execFileSync("apt-get", ["update", "-qq"], { stdio: ["ignore", "ignore", "inherit"], env });
    aptUpdated = true;
  }
  execFileSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...pkgs], {
    stdio: ["ignore", "ignore", "inherit"],
    env,
  });
}

function postgresBinDir() {
  const candidates = process.env.PG_BIN ? [process.env.PG_BIN] : ["/usr/lib/postgresql/15/bin"];
  const found = candidates.find((dir) => existsSync(join(dir, "initdb")));
  if (found) return found;
  aptInstall("postgresql-15");
  return "/usr/lib/postgresql/15/bin";
}

function redisServerPath() {
  if (!which("redis-server")) aptInstall("redis-server");
  return which("redis-server");
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** PostgreSQL refuses to run as root: run its tools as the postgres user then. */
function runPg(bin, args) {
  const [command, finalArgs] = isRoot ? ["runuser", ["-u", "postgres", "--", bin, ...args]] : [bin, args];
  const result = spawnSync(command, finalArgs, { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`${bin} ${args.join(" ")} failed:\n${result.stdout}${result.stderr}`);
}

async function startPostgres(workDir) {
  const binDir = postgresBinDir();
  const dataDir = join(workDir, "pg");
  const port = await freePort();
  if (isRoot) chownSync(workDir, uidOf("postgres"), gidOf("postgres"));
  runPg(join(binDir, "initdb"), [
    "-D",
    dataDir,
    "-U",
    "postgres",
    "--auth=trust",
    "-E",
    "UTF8",
    "--no-sync",
    "--no-instructions",
  ]);
  const options = [
    `-p ${port}`,
    "-c listen_addresses=127.0.0.1",
    `-k ${workDir}`,
    "-c fsync=off",
    "-c synchronous_commit=off",
    "-c full_page_writes=off",
    "-c max_connections=300",
    "-c shared_buffers=64MB",
  ].join(" ");
  runPg(join(binDir, "pg_ctl"), [
    "-D",
    dataDir,
    "-o",
    options,
    "-l",
    join(workDir, "pg.log"),
    "-w",
    "-t",
    "60",
    "start",
  ]);
  log(`PostgreSQL ${binDir.split("/").at(-2)} on 127.0.0.1:${port}`);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop: () => runPg(join(binDir, "pg_ctl"), ["-D", dataDir, "-m", "immediate", "-w", "stop"]),
  };
}

function uidOf(user) {
  return Number(execFileSync("id", ["-u", user], { encoding: "utf8" }).trim());
}
function gidOf(user) {
  return Number(execFileSync("id", ["-g", user], { encoding: "utf8" }).trim());
}

async function startRedis() {
  const binary = redisServerPath();
  const port = await freePort();
  const child = spawn(binary, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: "ignore",
  });
  await waitFor(async () => {
    const result = spawnSync(which("redis-cli") ?? "redis-cli", ["-p", String(port), "ping"], { encoding: "utf8" });
    return result.stdout.trim() === "PONG";
  }, "Redis");
  log(`Redis on 127.0.0.1:${port}`);
  return { url: `redis://127.0.0.1:${port}`, stop: () => child.kill("SIGKILL") };
}

async function waitFor(check, what) {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not start`);
}

/** Debian's Chromium, for the page checks (status page) in the tests. */
/** Programs some tests drive: a browser (status page, /docs) and the reverse proxies whose configs we ship. */
function ensureTools() {
  const missing = ["chromium", "nginx", "caddy"].filter((tool) => !which(tool) && !existsSync(`/usr/sbin/${tool}`));
  if (missing.length > 0) aptInstall(...missing);
}

module.exports = { startPostgres, startRedis, ensureTools, freePort, log };
