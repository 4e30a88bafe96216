import type { Database } from "../db";
import { pendingMigrations } from "../db";
import { ApiRouter, json } from "./api-router";
import { Health, Readiness } from "./schemas";

/** Parts that later features plug in; absent parts report their real state (not there), never a fake success. */
export interface HealthProbes {
  /** Local mode: a healthy vLLM backend lists at least one model. */
  modelsLoaded?: () => boolean;
  vectorDbConnected?: () => Promise<boolean>;
}

export interface HealthDeps {
  db: Database;
  version: string;
  probes?: HealthProbes;
}

const startedAt = Date.now();

/** `/health` is liveness (no I/O but cheap probes); `/ready` is readiness (database reachable and migrated). */
export function healthRoutes({ db, version, probes = {} }: HealthDeps): ApiRouter {
  const api = new ApiRouter("Operations");
  let migrated = false;

  api.route(
    {
      method: "get",
      path: "/health",
      summary: "Liveness, with the state of the model backend and the vector store",
      access: "public",
      responses: { 200: { description: "Alive.", content: json(Health) } },
    },
    async (_input, res) => {
      const vectorDbConnected = probes.vectorDbConnected ? await probes.vectorDbConnected().catch(() => false) : false;
      res.json({
        status: "healthy",
        version,
        uptime_seconds: Math.floor((Date.now() - startedAt) / 1000),
        models_loaded: probes.modelsLoaded?.() ?? false,
        vector_db_connected: vectorDbConnected,
      });
    },
  );

  api.route(
    {
      method: "get",
      path: "/ready",
      summary: "Readiness: the database is reachable and migrated",
      access: "public",
      responses: {
        200: { description: "Ready for traffic.", content: json(Readiness) },
        503: { description: "Not ready (database unreachable or migrations pending).", content: json(Readiness) },
      },
    },
    async (_input, res) => {
      try {
        if (migrated) await db.query("select 1");
        else migrated = (await pendingMigrations(db)).length === 0;
      } catch {
        res.status(503).json({ status: "unavailable", database: "unreachable" });
        return;
      }
      if (!migrated) {
        res.status(503).json({ status: "unavailable", database: "migrations pending" });
        return;
      }
      res.json({ status: "ready", database: "ok" });
    },
  );

  return api;
}
