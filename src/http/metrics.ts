import type { NextFunction, Request, Response } from "express";
import type { IdleCollector } from "../idle-collector";
import type { Metrics } from "../metrics";
import { ApiRouter } from "./api-router";

/**
 * The route pattern (`/v1/api-keys/:id`), never the raw path: label values must stay few. Computed from the
 * original URL, because Express has already restored `req.baseUrl` when an error response finishes.
 */
function endpointOf(req: Request): string {
  const pattern: unknown = req.route?.path;
  if (typeof pattern !== "string") return pattern ? String(pattern) : "unmatched";
  const segments = (req.originalUrl.split("?")[0] ?? "").split("/").filter(Boolean);
  const mount = segments.slice(0, Math.max(0, segments.length - pattern.split("/").filter(Boolean).length));
  return `${mount.length > 0 ? `/${mount.join("/")}` : ""}${pattern}`;
}

/** Counts every request once it is finished or abandoned: rate, duration, errors, in flight. */
export function observeRequests(metrics: Metrics, activity: Pick<IdleCollector, "begin" | "end">) {
  return (req: Request, res: Response, next: NextFunction) => {
    const stopTimer = metrics.requestDuration.startTimer();
    metrics.inFlight.inc();
    activity.begin();
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      metrics.inFlight.dec();
      activity.end();
      const endpoint = endpointOf(req);
      const status = res.writableFinished ? res.statusCode : 499;
      stopTimer({ endpoint });
      metrics.requestsTotal.inc({ endpoint, status: String(status) });
      if (status >= 400)
        metrics.errorsTotal.inc({
          endpoint,
          type: String(res.locals.errorType ?? (status === 499 ? "client_closed" : "unknown")),
        });
    };
    res.once("finish", finish);
    res.once("close", finish);
    next();
  };
}

/** GET /metrics and /prometheus (the seed's path), behind `Authorization: Bearer <METRICS_TOKEN>` when one is set. */
export function metricsRoutes(metrics: Metrics, token: string | undefined): ApiRouter {
  const api = new ApiRouter("Operations");
  const handler = async (_input: unknown, res: Response) => {
    res.set("content-type", metrics.registry.contentType).send(await metrics.registry.metrics());
  };
  for (const path of ["/metrics", "/prometheus"]) {
    api.route(
      {
        method: "get",
        path,
        summary: "Prometheus metrics (text exposition format)",
        access: token ? "metrics_token" : "public",
        responses: { 200: { description: "The metrics.", content: { "text/plain": undefined } } },
      },
      handler,
    );
  }
  return api;
}
