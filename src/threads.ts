import { Worker } from "node:worker_threads";

/**
 * Starts a worker thread from a module of this source tree, given its path without extension: the compiled .js
 * beside the caller, or (from TypeScript sources: tests, `tsx`) the .ts through tsx's require hook.
 */
export function startThread(modulePath: string, workerData?: unknown): Worker {
  const fromSources = __filename.endsWith(".ts");
  const script = `${modulePath}${fromSources ? ".ts" : ".js"}`;
  if (!fromSources) return new Worker(script, { workerData });
  const bootstrap = `require(${JSON.stringify(require.resolve("tsx/cjs"))}); require(${JSON.stringify(script)});`;
  return new Worker(bootstrap, { eval: true, workerData });
}
