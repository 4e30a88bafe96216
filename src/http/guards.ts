import { createHash, timingSafeEqual } from "node:crypto";
import type { NextFunction, Request, RequestHandler, Response } from "express";
import { type PolarWebhooks, type VerifiedWebhook, WebhookMalformedError, WebhookRejectedError } from "../billing";
import { AuthenticationError, InvalidRequestError, NotFoundError, PermissionDeniedError } from "../errors";
import type { Authenticator, Principal } from "../identity";
import type { Guards } from "./api-router";
import { setRequestUser } from "./request-context";

export interface GuardDeps {
  authenticator: Authenticator;
  adminApiKey?: string;
  metricsToken?: string;
  webhooks?: PolarWebhooks;
}

/** One guard per kind of access; `ApiRouter.build` puts the right one in front of every route. */
export function guards(deps: GuardDeps): Guards {
  return {
    api_key: apiKeyGuard(deps.authenticator),
    admin: adminGuard(deps.adminApiKey),
    metrics_token: metricsGuard(deps.metricsToken),
    webhook_signature: webhookGuard(deps.webhooks),
  };
}

/** The caller of an `api_key` route, as its guard authenticated them. */
export function principalOf(res: Response): Principal {
  const principal = res.locals.principal as Principal | undefined;
  if (!principal) throw new Error("principalOf used on a route without access: api_key");
  return principal;
}

/** The delivery a `webhook_signature` route's guard verified. */
export function verifiedWebhookOf(res: Response): VerifiedWebhook {
  const webhook = res.locals.webhook as VerifiedWebhook | undefined;
  if (!webhook) throw new Error("verifiedWebhookOf used on a route without access: webhook_signature");
  return webhook;
}

/** A Perpetual API key or Supabase JWT; Anthropic's SDK sends its key as x-api-key, everything else as Bearer. */
function apiKeyGuard(authenticator: Authenticator): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    const apiKeyHeader = req.get("x-api-key");
    const principal = await authenticator.authenticate(
      req.get("authorization") ?? (apiKeyHeader ? `Bearer ${apiKeyHeader}` : undefined),
    );
    res.locals.principal = principal;
    setRequestUser(res, principal.userId);
    next();
  };
}

const digest = (value: string) => createHash("sha256").update(value).digest();

/** Compares digests, so the comparison takes the same time whatever the input's length or content. */
function matches(presented: string | undefined, expected: Buffer): boolean {
  return presented !== undefined && timingSafeEqual(digest(presented), expected);
}

const bearer = (req: Request) => /^Bearer\s+(\S+)$/i.exec(req.get("authorization") ?? "")?.[1];

function adminGuard(adminApiKey: string | undefined): RequestHandler {
  const expected = adminApiKey ? digest(adminApiKey) : undefined;
  return (req, _res, next) => {
    if (!expected) {
      throw new PermissionDeniedError("The admin API is disabled: set ADMIN_API_KEY to enable it.", {
        code: "admin_disabled",
      });
    }
    // Authorization: Bearer, or X-API-Key (the Multiverse gateway's convention).
    if (!matches(bearer(req) ?? req.get("x-api-key"), expected))
      throw new AuthenticationError("Invalid admin API key.");
    next();
  };
}

/** METRICS_TOKEN when one is set; without one the metrics routes declare themselves public instead. */
function metricsGuard(token: string | undefined): RequestHandler {
  const expected = token ? digest(token) : undefined;
  return (req, _res, next) => {
    if (expected && !matches(bearer(req), expected)) {
      throw new AuthenticationError("A valid metrics token is required.");
    }
    next();
  };
}

export const billingDisabled = () =>
  new NotFoundError("Billing is not enabled on this server.", { code: "billing_not_enabled" });

/** Standard Webhooks signature over the raw body (app.ts reads the webhook route's body with express.raw). */
function webhookGuard(webhooks: PolarWebhooks | undefined): RequestHandler {
  return (req, res, next) => {
    if (!webhooks) throw billingDisabled();
    const headers: Record<string, string> = {};
    for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"]) headers[name] = req.get(name) ?? "";
    try {
      res.locals.webhook = webhooks.verify(Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0), headers);
    } catch (error) {
      if (error instanceof WebhookRejectedError) {
        throw new PermissionDeniedError(`Webhook signature rejected: ${error.message}`, { code: "invalid_signature" });
      }
      if (error instanceof WebhookMalformedError)
        throw new InvalidRequestError(error.message, { code: "invalid_payload" });
      throw error;
    }
    next();
  };
}
