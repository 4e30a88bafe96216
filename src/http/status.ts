import type { z } from "zod";
import type { Database } from "../db";
import type { Metrics } from "../metrics";
import { ApiRouter, json } from "./api-router";
import { Status } from "./schemas";
import { type ComponentStates, UptimeHistory } from "./uptime";

export interface StatusDeps {
  db: Database;
  metrics: Metrics;
  version: string;
  appName: string;
  /** undefined: not configured here. */
  redisConnected?: () => boolean;
  vectorDbConnected?: () => Promise<boolean>;
  /** Local mode: the model servers' health as the pool last saw it. */
  backends?: () => readonly { healthy: boolean; models: string[] }[];
  /** Injected in tests, which move time instead of waiting for it. */
  now?: () => number;
}

type Snapshot = z.output<typeof Status>;

const CACHE_MS = 5_000;
/** Components are checked this often for the uptime figures, whether or not anyone looks at the page. */
const SAMPLE_MS = 30_000;
const startedAt = Date.now();

/**
 * GET /status: a small public page (and /status.json) with component health and today's totals. Nothing secret,
 * nothing per user; computed at most every 5 s whatever the traffic.
 */
export function statusRoutes(deps: StatusDeps): ApiRouter {
  const api = new ApiRouter("Operations");
  const now = deps.now ?? Date.now;
  const history = new UptimeHistory(now);
  let cached: { at: number; snapshot: Promise<Snapshot> } | undefined;

  const sample = async () => {
    const states = await checkComponents(deps);
    history.record(states);
    return states;
  };
  void sample();
  // Unref'd: the sampler never keeps a process alive.
  setInterval(() => void sample(), SAMPLE_MS).unref();

  const snapshot = () => {
    if (!cached || now() - cached.at > CACHE_MS) cached = { at: now(), snapshot: takeSnapshot(deps, sample, history) };
    return cached.snapshot;
  };

  api.route(
    {
      method: "get",
      path: "/status.json",
      summary: "Service status as JSON",
      access: "public",
      responses: { 200: { description: "Status, cached for 5 s.", content: json(Status) } },
    },
    async (_input, res) => {
      res.set("cache-control", "public, max-age=5").json(await snapshot());
    },
  );

  api.route(
    {
      method: "get",
      path: "/status",
      summary: "Service status page (HTML), or JSON when the client accepts only JSON",
      access: "public",
      responses: {
        200: {
          description: "Status, cached for 5 s.",
          content: { "text/html": undefined, "application/json": Status },
        },
      },
    },
    async (_input, res, req) => {
      if (req.accepts(["html", "json"]) === "json") {
        res.set("cache-control", "public, max-age=5").json(await snapshot());
        return;
      }
      res.set("content-type", "text/html; charset=utf-8").send(statusPage(deps.appName, await snapshot()));
    },
  );

  return api;
}

/** One check of every component: the database answers, the vector store and Redis say connected, backends healthy. */
async function checkComponents(deps: StatusDeps): Promise<ComponentStates> {
  const database = await deps.db.query("select 1").then(
    () => "operational" as const,
    () => "down" as const,
  );
  const vector = deps.vectorDbConnected
    ? (await deps.vectorDbConnected().catch(() => false))
      ? "operational"
      : "down"
    : "not configured";
  const redis = deps.redisConnected ? (deps.redisConnected() ? "operational" : "down") : "not configured";
  const backends = Object.fromEntries(
    (deps.backends?.() ?? []).map((b, i) => [backendName(i), b.healthy ? "operational" : "down"] as const),
  );
  return { api: "operational", database, vector_db: vector, redis, ...backends };
}

const backendName = (index: number) => `backend ${index + 1}`;

async function takeSnapshot(
  deps: StatusDeps,
  check: () => Promise<ComponentStates>,
  history: UptimeHistory,
): Promise<Snapshot> {
  const states = await check();
  let today: { requests: number; users: number } | undefined;
  try {
    const [row] = await deps.db.query<{ requests: number; users: number }>(
      `select count(*)::int as requests, count(distinct user_id)::int as users
         from usage_logs where created_at >= date_trunc('day', now())`,
    );
    today = row;
  } catch {}
  const durations = (await deps.metrics.requestDuration.get()).values;
  const sum = durations.filter((v) => v.metricName?.endsWith("_sum")).reduce((a, v) => a + v.value, 0);
  const count = durations.filter((v) => v.metricName?.endsWith("_count")).reduce((a, v) => a + v.value, 0);
  const backends = (deps.backends?.() ?? []).map((b, i) => ({
    name: backendName(i),
    state: states[backendName(i)] ?? "down",
    models: [...b.models],
  }));
  const degraded = Object.values(states).includes("down");
  return {
    status: degraded ? "degraded" : "operational",
    version: deps.version,
    uptime_seconds: Math.floor((Date.now() - startedAt) / 1000),
    components: {
      api: "operational",
      database: states.database ?? "down",
      vector_db: states.vector_db ?? "not configured",
      redis: states.redis ?? "not configured",
    },
    backends,
    uptime_24h: history.percentages(),
    uptime_window_seconds: history.windowSeconds(),
    average_latency_ms: count > 0 ? Math.round((sum / count) * 10_000) / 10 : null,
    requests_today: today?.requests ?? null,
    active_users_today: today?.users ?? null,
    checked_at: new Date().toISOString(),
  };
}

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c);

/** Server-rendered with the current values, then refreshed from /status.json every 10 s. No external assets. */
function statusPage(appName: string, s: Snapshot): string {
  const percent = (v: number | null | undefined) => (v === null || v === undefined ? "–" : `${v} %`);
  const row = (id: string, label: string, value: string, uptimeKey = id) =>
    `<tr><th>${escapeHtml(label)}</th><td id="${id}" class="${value === "operational" ? "ok" : value === "down" ? "down" : ""}">${escapeHtml(value)}</td>` +
    `<td id="${id}-uptime">${percent(s.uptime_24h[uptimeKey])}</td></tr>`;
  const backendRows = s.backends
    .map((b, i) =>
      row(`backend-${i + 1}`, `${b.name}${b.models.length ? ` (${b.models.join(", ")})` : ""}`, b.state, b.name),
    )
    .join("\n");
  const n = (v: number | null, unit = "") => (v === null ? "–" : `${v}${unit}`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(appName)} status</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#1f2328}
h1{font-size:1.5rem}#overall{padding:.75rem 1rem;border-radius:.5rem;background:#dafbe1}
#overall.degraded{background:#ffebe9}table{width:100%;border-collapse:collapse;margin-top:1rem}
th,td{text-align:left;padding:.4rem;border-bottom:1px solid #d0d7de}.ok{color:#1a7f37}.down{color:#cf222e}
small{color:#59636e}
</style></head>
<body>
<h1>${escapeHtml(appName)} status</h1>
<p id="overall" class="${s.status}">All systems: <strong id="status">${s.status}</strong></p>
<table>
<tr><th></th><td><small>now</small></td><td><small>operational, last 24 h</small></td></tr>
${row("api", "API", s.components.api)}
${row("database", "Database", s.components.database)}
${row("vector_db", "Vector database", s.components.vector_db)}
${row("redis", "Redis", s.components.redis)}
${backendRows}
<tr><th>Uptime</th><td id="uptime">${s.uptime_seconds} s</td></tr>
<tr><th>Average latency</th><td id="latency">${n(s.average_latency_ms, " ms")}</td></tr>
<tr><th>Requests today</th><td id="requests">${n(s.requests_today)}</td></tr>
<tr><th>Active users today</th><td id="users">${n(s.active_users_today)}</td></tr>
</table>
<p><small>Version ${escapeHtml(s.version)} · checked <span id="checked">${s.checked_at}</span></small></p>
<script>
async function refresh() {
  try {
    const s = await (await fetch("status.json", { cache: "no-store" })).json();
    const set = (id, v) => { const el = document.getElementById(id); el.textContent = v; };
    const state = (id, v) => { set(id, v); document.getElementById(id).className = v === "operational" ? "ok" : v === "down" ? "down" : ""; };
    set("status", s.status); document.getElementById("overall").className = s.status;
    const pct = (v) => (v === null || v === undefined ? "–" : v + " %");
    for (const c of ["api", "database", "vector_db", "redis"]) { state(c, s.components[c]); set(c + "-uptime", pct(s.uptime_24h[c])); }
    s.backends.forEach((b, i) => { const id = "backend-" + (i + 1); if (document.getElementById(id)) { state(id, b.state); set(id + "-uptime", pct(s.uptime_24h[b.name])); } });
    set("uptime", s.uptime_seconds + " s");
    set("latency", s.average_latency_ms === null ? "–" : s.average_latency_ms + " ms");
    set("requests", s.requests_today ?? "–");
    set("users", s.active_users_today ?? "–");
    set("checked", s.checked_at);
    document.body.dataset.live = "true";
  } catch (e) { document.body.dataset.live = "false"; }
}
refresh(); setInterval(refresh, 10000);
</script>
</body></html>`;
}
