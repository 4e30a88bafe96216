import { Router } from "express";
import type { Database } from "../db";
import { pendingMigrations } from "../db";

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
export function healthRoutes({ db, version, probes = {} }: HealthDeps): Router {
  const router = Router();
  let migrated = false;

  router.get("/health", async (_req, res) => {
    const vectorDbConnected = probes.vectorDbConnected ? await probes.vectorDbConnected().catch(() => false) : false;
    res.json({
      status: "healthy",
      version,
      uptime_seconds: Math.floor((Date.now() - startedAt) / 1000),
      models_loaded: probes.modelsLoaded?.() ?? false,
      vector_db_connected: vectorDbConnected,
    });
  });

  router.get("/ready", async (_req, res) => {
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
  });

  return router;
}
