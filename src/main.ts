import { ConfigError, loadConfig } from "./config";
import { migrate, openDatabase } from "./db";
import { createApp } from "./http";
import { createLogger, redactText } from "./log";
import { listen, onShutdownSignal } from "./server";
import { createServices } from "./services";

/** Wires the real dependencies, applies migrations in embedded mode, listens, and drains on SIGTERM. */
async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger(config.log);
  const db = await openDatabase(config, (error) => logger.warn("idle database connection failed", { error }));
  if (db.kind === "pglite") {
    const applied = await migrate(db);
    logger.info("embedded database ready", { data_dir: config.dataDir, migrations_applied: applied.length });
  }

  const services = createServices(config, db, logger);
  await services.pool?.start();
  await services.counters.ready(3_000);
  const app = createApp({ config, db, logger, services });
  const running = await listen(app, { ...config.http });
  logger.info(`${config.appName} listening`, {
    url: `http://${config.http.host}:${running.port}`,
    mode: config.mode,
    database: db.kind,
    version: config.version,
  });

  onShutdownSignal(logger, async () => {
    await running.drain(config.http.shutdownTimeoutMs);
    services.pool?.stop();
    await services.usage.close();
    await services.counters.close();
    await db.close();
    logger.info("stopped");
  });
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
  } else {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`Perpetual failed to start: ${redactText(message)}\n`);
  }
  process.exit(1);
});
