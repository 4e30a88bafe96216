import { randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Clock } from "../../src/clock";
import { type Config, loadConfig } from "../../src/config";
import type { Database } from "../../src/db";
import { createApp, type HealthProbes } from "../../src/http";
import type { Logger } from "../../src/log";
import { listen } from "../../src/server";
import { createServices, type Services, startServices, stopServices } from "../../src/services";
import type { VaultKeys } from "../../src/vault";
import { captureLogger } from "./logs";

export function testConfig(env: Record<string, string> = {}, configDir?: string): Config {
  return loadConfig(
    {
      NODE_ENV: "test",
      API_HOST: "127.0.0.1",
      API_PORT: "0",
      DATA_DIR: mkdtempSync(join(tmpdir(), "perpetual-data-")),
      ...env,
    },
    { configDir },
  );
}

/** A copy of config/ whose tiers.json is changed by `edit` (e.g. Polar products, spend caps). */
export function configDirWith(edit: (tiers: { tiers: Record<string, Record<string, unknown>> }) => void): string {
  const dir = mkdtempSync(join(tmpdir(), "perpetual-config-"));
  cpSync(join(__dirname, "..", "..", "config"), dir, { recursive: true });
  const tiers = JSON.parse(readFileSync(join(dir, "tiers.json"), "utf8"));
  edit(tiers);
  writeFileSync(join(dir, "tiers.json"), JSON.stringify(tiers));
  return dir;
}

// Replicas of one test share it, as replicas of a deployment share API_KEY_ENCRYPTION_KEY.
const TEST_VAULT_KEYS: VaultKeys = { currentKey: randomBytes(32).toString("base64"), previousKeys: [] };

export interface TestApp {
  baseUrl: string;
  services: Services;
  logs: () => string;
  close: () => Promise<void>;
}

/** The real app on an ephemeral loopback port. */
export async function startTestApp(options: {
  db: Database;
  config?: Config;
  logger?: Logger;
  probes?: HealthProbes;
  /** The vault's master keys (not part of Config); default: one key shared by every app of this test file. */
  vaultKeys?: VaultKeys;
  /** The services' clock (rate-limit windows, outbox retries); default: the system clock. */
  clock?: Clock;
}): Promise<TestApp> {
  const captured = captureLogger();
  const config = options.config ?? testConfig();
  const logger = options.logger ?? captured.logger;
  const services = createServices(config, options.db, logger, {
    vaultKeys: options.vaultKeys ?? TEST_VAULT_KEYS,
    clock: options.clock,
  });
  await startServices(services);
  const app = createApp({ config, db: options.db, logger, services, probes: options.probes });
  const running = await listen(app, { host: "127.0.0.1", port: 0, requestTimeoutMs: config.http.requestTimeoutMs });
  return {
    baseUrl: `http://127.0.0.1:${running.port}`,
    services,
    logs: captured.text,
    close: async () => {
      services.chat.beginShutdown();
      await running.drain(1_000);
      await stopServices(services);
    },
  };
}

/** The usage row of a request (by the server's id, x-perpetual-request-id), once the recorder has written it. */
export async function usageRowOf(
  app: TestApp,
  db: Database,
  requestId: string | null | undefined,
): Promise<Record<string, unknown> | undefined> {
  await app.services.usage.flush();
  const [row] = await db.query<Record<string, unknown>>("select * from usage_logs where request_id = $1", [requestId]);
  return row;
}
