import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { registerInstrumentations } from "@opentelemetry/instrumentation";
import { ExpressInstrumentation } from "@opentelemetry/instrumentation-express";
import { HttpInstrumentation } from "@opentelemetry/instrumentation-http";
import { IORedisInstrumentation } from "@opentelemetry/instrumentation-ioredis";
import { PgInstrumentation } from "@opentelemetry/instrumentation-pg";
import { UndiciInstrumentation } from "@opentelemetry/instrumentation-undici";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import type { Config } from "./config";

export interface Telemetry {
  /** Exports the spans still buffered; call on shutdown. */
  shutdown(): Promise<void>;
}

/**
 * OpenTelemetry tracing, on only when OTEL_EXPORTER_OTLP_ENDPOINT is set: incoming HTTP (with Express route names),
 * outgoing HTTP and fetch (the provider SDKs use fetch, so provider calls are child spans and carry `traceparent`),
 * PostgreSQL and Redis commands. Must start before express, pg and ioredis are first required, because the
 * instrumentations patch modules as they load: main.ts starts it before importing the application.
 */
export function startTelemetry(config: Config): Telemetry | undefined {
  const { endpoint, headers, serviceName } = config.telemetry;
  if (!endpoint) return undefined;
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({
      "service.name": serviceName,
      "service.version": config.version,
      "deployment.environment.name": config.environment,
    }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint}/v1/traces`, headers }))],
  });
  provider.register();
  registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new HttpInstrumentation({
        // Probes and scrapes would drown the traces that matter.
        ignoreIncomingRequestHook: (req) => /^\/(health|ready|metrics|prometheus)\b/.test(req.url ?? ""),
      }),
      new ExpressInstrumentation(),
      new UndiciInstrumentation(),
      // Statement text only, never parameter values: they hold API key hashes and user content.
      new PgInstrumentation({ enhancedDatabaseReporting: false }),
      new IORedisInstrumentation(),
    ],
  });
  return { shutdown: () => provider.shutdown() };
}
