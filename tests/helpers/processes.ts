import { type ChildProcess, spawn } from "node:child_process";
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
  timeoutMs = 20_000,
): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const match = output().match(pattern);
    if (match) return match;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${pattern}; output so far:\n${output()}`);
}
