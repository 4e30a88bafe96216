import { type Config, ConfigError, loadConfig } from "./config";
import { redactText } from "./log/redact";

function fail(error: unknown): never {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
  } else {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`Perpetual failed to start: ${redactText(message)}\n`);
  }
  process.exit(1);
}

let config: Config;
try {
  config = loadConfig(process.env, { server: true });
} catch (error) {
  fail(error);
}
// Tracing (loaded only when configured) starts first; the application is loaded only then, so that the
// instrumentations see express, pg and ioredis being required.
const telemetry = config.telemetry.endpoint
  ? import("./telemetry.js").then(({ startTelemetry }) => startTelemetry(config))
  : Promise.resolve(undefined);
telemetry.then(async (t) => (await import("./start.js")).start(config, t)).catch(fail);
