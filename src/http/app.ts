import express, { type Express } from "express";
import type { Config } from "../config";
import type { Database } from "../db";
import { RedisCounters } from "../limits";
import type { Logger } from "../log";
import type { Services } from "../services";
import { consoleRoutes } from "./console";
import { errorHandler, notFoundHandler } from "./error-handler";
import { guards } from "./guards";
import { type HealthProbes, healthRoutes } from "./health";
import { jsonBodies } from "./json-body";
import { metricsRoutes, observeRequests } from "./metrics";
import { ApiCatalog } from "./openapi";
import { requestContext } from "./request-context";
import { accountRoutes } from "./routes/account";
import { adminRoutes } from "./routes/admin";
import { anthropicRoutes } from "./routes/anthropic-api";
import { billingRoutes, polarWebhookRoutes, WEBHOOK_PATH } from "./routes/billing";
import { memoryRoutes } from "./routes/memories";
import { openAiRoutes } from "./routes/openai-api";
import { responsesRoutes } from "./routes/responses-api";
import { statusRoutes } from "./status";

export interface AppDeps {
  config: Config;
  db: Database;
  logger: Logger;
  services: Services;
  probes?: HealthProbes;
}

/** Builds the HTTP application without listening, so tests can start it on port 0. */
export function createApp(deps: AppDeps): Express {
  const { config, db, logger } = deps;
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);

  if (config.http.trustProxy !== undefined) app.set("trust proxy", config.http.trustProxy);
  app.use(requestContext(logger));
  app.use(observeRequests(deps.services.metrics, deps.services.idle));
  // Polar's webhook signature covers the exact bytes: that one route gets the raw body (jsonBodies then skips it).
  app.use(`${config.http.apiPrefix}${WEBHOOK_PATH}`, express.raw({ type: () => true, limit: "1mb" }));
  app.use(jsonBodies(config.http.maxBodyBytes));
  const { pool } = deps.services;
  const { memory } = deps.services;
  const probes: HealthProbes = {
    modelsLoaded: pool ? () => pool.models().length > 0 : undefined,
    vectorDbConnected: () => memory.store.connected(),
    ...deps.probes,
  };
  const catalog = new ApiCatalog(
    { title: config.appName, version: config.version },
    guards({
      authenticator: deps.services.authenticator,
      adminApiKey: config.adminApiKey,
      metricsToken: config.metricsToken,
      webhooks: deps.services.billing.webhooks,
    }),
  );
  const prefix = config.http.apiPrefix;
  // The proxy routes first: Express tries routers in order, and these carry nearly all the traffic.
  catalog.mount(app, prefix, openAiRoutes({ logger, ...deps.services }));
  catalog.mount(app, prefix, anthropicRoutes({ logger, config, ...deps.services }));
  catalog.mount(app, prefix, responsesRoutes({ logger, db, ...deps.services }));
  catalog.mount(app, "/", healthRoutes({ db, version: config.version, probes }));
  catalog.mount(app, "/", metricsRoutes(deps.services.metrics, config.metricsToken));
  const { counters } = deps.services;
  catalog.mount(
    app,
    "/",
    statusRoutes({
      db,
      metrics: deps.services.metrics,
      version: config.version,
      appName: config.appName,
      redisConnected: counters instanceof RedisCounters ? () => counters.connected : undefined,
      vectorDbConnected: probes.vectorDbConnected,
      backends: pool ? () => pool.backends : undefined,
    }),
  );
  catalog.mount(app, prefix, accountRoutes({ db, ...deps.services }));
  catalog.mount(app, prefix, memoryRoutes(deps.services));
  catalog.mount(app, prefix, polarWebhookRoutes(deps.services));
  catalog.mount(app, prefix, billingRoutes({ db, tiers: config.tiers, logger, ...deps.services }));
  catalog.mount(app, "/admin", adminRoutes({ db, tiers: config.tiers, ...deps.services }));

  app.use(catalog.routes());
  app.use(consoleRoutes(config));

  app.use(notFoundHandler);
  app.use(errorHandler(logger, `${prefix}/messages`));
  return app;
}
