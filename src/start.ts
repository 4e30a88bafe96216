import { runCli } from "./cli/main";
import { serveCli } from "./cli/server-socket";
import type { Config } from "./config";
import { type Database, migrate, openDatabase } from "./db";
import { createApp } from "./http";
import { createLogger, type Logger } from "./log";
import { listen, onShutdownSignal } from "./server";
import { createServices, startServices, stopServices } from "./services";
import type { Telemetry } from "./telemetry";
import { vaultKeysFrom } from "./vault";

/** Wires the real dependencies, applies migrations in embedded mode, listens, and drains on SIGTERM. */
export async function start(config: Config, telemetry: Telemetry | undefined): Promise<void> {
  const logger = createLogger(config.log);
  const db = await openDatabase(config, (error) => logger.warn("idle database connection failed", { error }));
  if (db.kind === "pglite") {
    const applied = await migrate(db);
    logger.info("embedded database ready", { data_dir: config.dataDir, migrations_applied: applied.length });
  }

  const services = createServices(config, db, logger, { vaultKeys: vaultKeysFrom(process.env) });
  await startServices(services);
  const app = createApp({ config, db, logger, services });
  const running = await listen(app, { ...config.http });
  // With --expose-gc (npm start, the image): the heap is collected and given back after ~30 s of quiet.
  services.idle.start();
  let stopCli = async () => {};
  // Installed before the server says it listens: a SIGTERM from the moment the port is open drains, never kills.
  onShutdownSignal(logger, async () => {
    await stopCli();
    services.chat.beginShutdown();
    await running.drain(config.http.shutdownTimeoutMs);
    await stopServices(services);
    await db.close();
    await telemetry?.shutdown().catch((error: unknown) => logger.warn("could not flush traces", { error }));
    logger.info("stopped");
  });
  logger.info(`${config.appName} listening`, {
    url: `http://${config.http.host}:${running.port}`,
    mode: config.mode,
    database: db.kind,
    version: config.version,
    tracing: telemetry ? config.telemetry.endpoint : "off",
  });
  if (db.kind === "pglite") {
    // The embedded database is this process's: the CLI runs its commands in here while the server runs.
    stopCli = await serveCli(config.dataDir, { db, userChanges: services.userChanges }, runCli, logger);
    await showFirstSteps(db, logger);
  }
}

/** A fresh embedded install has no user yet: say how to get one, without stopping the server. */
async function showFirstSteps(db: Database, logger: Logger): Promise<void> {
  const [row] = await db.query<{ users: number }>("select count(*)::int as users from users");
  if (row?.users) return;
  logger.info(
    "no users yet: create one (the server may keep running) with: npm run cli -- users create --email you@example.com" +
      " — then sign in to the account console at /console with the key it prints",
  );
}
