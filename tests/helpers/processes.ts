import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(__dirname, "..", "..");

/** Runs one of our TypeScript entry points in a real Node process (as `npm start` / `npm run cli` do). */
export function spawnEntry(
  entry: "src/main.ts" | "src/cli/main.ts",
  args: string[],
  env: Record<string, string>,
): ChildProcess {
  const { NODE_OPTIONS: _jestOnly, ...inherited } = process.env;
  return spawn(process.execPath, ["--import", "tsx", join(ROOT, entry), ...args], {
    cwd: ROOT,
    env: { ...inherited, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function collect(child: ChildProcess): { output: () => string; finished: Promise<Finished> } {
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString("utf8");
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString("utf8");
  });
  const finished = new Promise<Finished>((resolve) => child.on("exit", (code) => resolve({ code, stdout, stderr })));
  return { output: () => stdout + stderr, finished };
}

export async function runCli(args: string[], env: Record<string, string>): Promise<Finished> {
  return collect(spawnEntry("src/cli/main.ts", args, env)).finished;
}

export async function waitForOutput(
  output: () => string,
  pattern: RegExp,
  timeoutMs = 180_000,
): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const match = output().match(pattern);
    if (match) return match;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${pattern}; output so far:\n${output()}`);
}

export interface ServerProcess {
  child: ChildProcess;
  base: string;
  output: () => string;
  finished: Promise<Finished>;
  /** Resident memory of the server process, from /proc (bytes). */
  rss(): number;
}

/** `npm start`'s entry point in its own process, listening on a free loopback port. */
export async function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const child = spawnEntry("src/main.ts", [], {
    API_PORT: "0",
    API_HOST: "127.0.0.1",
    LOG_FORMAT: "json",
    ...env,
  });
  const { output, finished } = collect(child);
  const exited = finished.then((f) => {
    throw new Error(`the server exited (${f.code}) before listening:\n${output()}`);
  });
  exited.catch(() => {});
  const [, port] = await Promise.race([waitForOutput(output, /"url":"http:\/\/127\.0\.0\.1:(\d+)"/, 60_000), exited]);
  return {
    child,
    base: `http://127.0.0.1:${port}`,
    output,
    finished,
    rss: () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))?.[1] ?? 0) * 1024,
  };
}
