import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import express, { type Response, Router } from "express";
import type { Config } from "../config";

/** Where the console's files are: next to this module's compiled form (the build copies them into dist/). */
const ASSETS = join(__dirname, "..", "console", "assets");

const escapeAttribute = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * What the page needs to know about this deployment, as meta tags in the page itself (no extra endpoint): the
 * API prefix, the providers a key can be stored for with a model to test each, and Supabase's public URL and
 * anon key when sign-in through Supabase Auth is configured.
 */
function pageFor(config: Config, template: string): string {
  const testModels: Record<string, string> = {};
  for (const [model, pricing] of config.models) testModels[pricing.provider] ??= model;
  const meta: Record<string, string> = {
    "perpetual-api-prefix": config.http.apiPrefix,
    "perpetual-providers": JSON.stringify([...config.providers.keys()].map((p) => ({ id: p, model: testModels[p] }))),
  };
  if (config.supabase.url && config.supabase.anonKey) {
    meta["perpetual-supabase-url"] = config.supabase.url;
    meta["perpetual-supabase-anon-key"] = config.supabase.anonKey;
  }
  const tags = Object.entries(meta)
    .map(([name, content]) => `<meta name="${name}" content="${escapeAttribute(content)}">`)
    .join("\n");
  return template.replace("<!--perpetual-meta-->", tags).replaceAll("{{appName}}", escapeAttribute(config.appName));
}

/**
 * Strict: scripts and styles only from this origin (no inline code, no CDN), API calls to this origin (and to
 * Supabase Auth when it is configured), no framing, no form posts anywhere.
 */
function contentSecurityPolicy(config: Config): string {
  const supabase = config.supabase.url ? ` ${new URL(config.supabase.url).origin}` : "";
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `connect-src 'self'${supabase}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/** GET /console: the account console, a static page that uses only the public API (docs/CONSOLE.md). */
export function consoleRoutes(config: Config): Router {
  const router = Router();
  const page = pageFor(config, readFileSync(join(ASSETS, "index.html"), "utf8"));
  const csp = contentSecurityPolicy(config);
  const secure = (res: Response) =>
    res.set({
      "content-security-policy": csp,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "cross-origin-opener-policy": "same-origin",
    });
  router.use("/console", (_req, res, next) => {
    secure(res);
    next();
  });
  router.get(["/console", "/console/"], (_req, res) => {
    res.set({ "content-type": "text/html; charset=utf-8", "cache-control": "no-store" }).send(page);
  });
  router.use(
    "/console/vendor",
    express.static(join(dirname(require.resolve("@supabase/supabase-js/package.json")), "dist", "umd"), {
      index: false,
      maxAge: "1h",
    }),
  );
  router.use("/console", express.static(ASSETS, { index: false, maxAge: "5m" }));
  return router;
}
