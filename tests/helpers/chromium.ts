import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * The DOM of a page after headless Chromium (Debian's package; `npm test` installs it when missing) has run its
 * scripts for up to `budgetMs` of virtual time. Asynchronous on purpose: the server under test usually lives in
 * the calling process and must keep answering meanwhile.
 */
export function renderedDom(url: string, budgetMs = 5000): Promise<string> {
  const chromium = spawnSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).stdout.trim();
  if (!chromium) throw new Error("chromium is not installed: run the tests with `npm test`, which installs it");
  return new Promise((resolve, reject) => {
    execFile(
      chromium,
      [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        `--user-data-dir=${mkdtempSync(join(tmpdir(), "chromium-"))}`,
        `--virtual-time-budget=${budgetMs}`,
        "--dump-dom",
        url,
      ],
      { encoding: "utf8", timeout: 60_000, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => (error ? reject(new Error(`chromium failed: ${stderr}`)) : resolve(stdout)),
    );
  });
}

/** Debian's chromium, driven through playwright-core (no browser download): for tests that click through a page. */
export async function launchChromium(): Promise<import("playwright-core").Browser> {
  const executablePath = spawnSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).stdout.trim();
  if (!executablePath) throw new Error("chromium is not installed: run the tests with `npm test`, which installs it");
  const { chromium } = await import("playwright-core");
  return chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"] });
}
