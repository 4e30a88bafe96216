import type { Config } from "./config";
import { migrate, openDatabase } from "./db";
import { createApp } from "./http";
import { createLogger } from "./log";
import { listen, onShutdownSignal } from "./server";
import { createServices, startServices, stopServices } from "./services";
import type { Telemetry } from "./telemetry";

/** Wires the real dependencies, applies migrations in embedded mode, listens, and drains on SIGTERM. */
export async function start(config: Config, telemetry: Telemetry | undefined): Promise<void> {
  const logger = createLogger(config.log);
  const db = await openDatabase(config, (error) => logger.warn("idle database connection failed", { error }));
  if (db.kind === "pglite") {
    const applied = await migrate(db);
    logger.info("embedded database ready", { data_dir: config.dataDir, migrations_applied: applied.length });
  }

  const services = createServices(config, db, logger);
  await startServices(services);
  const app = createApp({ config, db, logger, services });
  const running = await listen(app, { ...config.http });
  logger.info(`${config.appName} listening`, {
    url: `http://${config.http.host}:${running.port}`,
    mode: config.mode,
    database: db.kind,
    version: config.version,
    tracing: telemetry ? config.telemetry.endpoint : "off",
  });

  onShutdownSignal(logger, async () => {
    services.chat.beginShutdown();
    await running.drain(config.http.shutdownTimeoutMs);
    await stopServices(services);
    await db.close();
    await telemetry?.shutdown().catch((error: unknown) => logger.warn("could not flush traces", { error }));
    logger.info("stopped");
  });
}
