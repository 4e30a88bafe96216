import { createHash, timingSafeEqual } from "node:crypto";
import { type NextFunction, type Request, type Response, Router } from "express";
import { z } from "zod";
import type { Tiers } from "../../config";
import type { Database } from "../../db";
import { ApiError, notFound } from "../../errors";
import {
  type Authenticator,
  createApiKey,
  createUser,
  EmailTakenError,
  findUser,
  listApiKeys,
  listUsers,
  revokeApiKey,
  stats,
  updateUser,
} from "../../identity";
import type { Logger } from "../../log";
import { parseBody, uuidParam } from "../../validation";
import { apiKeyJson, createdApiKeyJson, list, userJson } from "./views";

export interface AdminRoutesDeps {
  db: Database;
  tiers: Tiers;
  authenticator: Authenticator;
  logger: Logger;
  adminApiKey?: string;
}

const digest = (value: string) => createHash("sha256").update(value).digest();

/** Compares digests so the comparison takes the same time whatever the input's length or content. */
function adminGuard(adminApiKey: string | undefined) {
  const expected = adminApiKey ? digest(adminApiKey) : undefined;
  return (req: Request, _res: Response, next: NextFunction) => {
    if (!expected) {
      throw new ApiError(
        403,
        "The admin API is disabled: set ADMIN_API_KEY to enable it.",
        "permission_error",
        "admin_disabled",
      );
    }
    const match = /^Bearer\s+(\S+)$/i.exec(req.get("authorization") ?? "");
    if (!match || !timingSafeEqual(digest(match[1]!), expected)) {
      throw new ApiError(401, "Invalid admin API key.", "invalid_request_error", "invalid_api_key");
    }
    next();
  };
}

export function adminRoutes({ db, tiers, authenticator, logger, adminApiKey }: AdminRoutesDeps): Router {
  const router = Router();
  router.use(adminGuard(adminApiKey));

  const tier = z.string().refine((t) => tiers.byName.has(t), {
    message: `must be one of ${[...tiers.byName.keys()].join(", ")}`,
  });
  const limit = z.number().int().positive().max(100_000_000).nullable();
  const newUser = z.strictObject({ email: z.email().max(320), tier: tier.optional() });
  const userChanges = z
    .strictObject({ tier: tier.optional(), is_active: z.boolean().optional() })
    .refine((c) => c.tier !== undefined || c.is_active !== undefined, { message: "nothing to change" });
  const newKey = z.strictObject({
    name: z.string().trim().min(1).max(100).optional(),
    tier: tier.nullable().optional(),
    rate_limit_per_minute: limit.optional(),
    rate_limit_per_day: limit.optional(),
    expires_at: z.iso
      .datetime({ offset: true })
      .transform((v) => new Date(v))
      .optional(),
  });

  const audit = (action: string, fields: Record<string, unknown>) => logger.info("admin action", { action, ...fields });

  router.post("/users", async (req, res) => {
    const body = parseBody(newUser, req.body);
    const created = await db
      .transaction(async (tx) => {
        const user = await createUser(tx, body.email, body.tier ?? tiers.defaultTier);
        return { user, key: await createApiKey(tx, user.id, { name: "default" }) };
      })
      .catch((error: unknown) => {
        if (error instanceof EmailTakenError) {
          throw new ApiError(409, error.message, "invalid_request_error", "email_taken", "email");
        }
        throw error;
      });
    audit("users.create", { target_user_id: created.user.id, tier: created.user.tier });
    res.status(201).json({ ...userJson(created.user), api_key: createdApiKeyJson(created.key) });
  });

  router.get("/users", async (req, res) => {
    const pageSize = Math.min(Math.max(Number(req.query.limit) || 100, 1), 1000);
    const offset = Math.max(Number(req.query.offset) || 0, 0);
    res.json(list((await listUsers(db, pageSize, offset)).map(userJson)));
  });

  router.patch("/users/:id", async (req, res) => {
    const userId = uuidParam(req.params.id, "user");
    const body = parseBody(userChanges, req.body);
    const user = await updateUser(db, userId, { tier: body.tier, isActive: body.is_active });
    if (!user) throw notFound(`No user found with id '${userId}'.`, "user_not_found");
    authenticator.forgetUser(userId);
    audit("users.update", { target_user_id: userId, tier: body.tier, is_active: body.is_active });
    res.json(userJson(user));
  });

  router.post("/users/:id/api-keys", async (req, res) => {
    const userId = uuidParam(req.params.id, "user");
    const body = parseBody(newKey, req.body);
    if (!(await findUser(db, userId))) throw notFound(`No user found with id '${userId}'.`, "user_not_found");
    const key = await createApiKey(db, userId, {
      name: body.name,
      tier: body.tier ?? null,
      rateLimitPerMinute: body.rate_limit_per_minute ?? null,
      rateLimitPerDay: body.rate_limit_per_day ?? null,
      expiresAt: body.expires_at ?? null,
    });
    audit("api_keys.create", { target_user_id: userId, api_key_id: key.id });
    res.status(201).json(createdApiKeyJson(key));
  });

  router.get("/users/:id/api-keys", async (req, res) => {
    const userId = uuidParam(req.params.id, "user");
    if (!(await findUser(db, userId))) throw notFound(`No user found with id '${userId}'.`, "user_not_found");
    res.json(list((await listApiKeys(db, userId)).map(apiKeyJson)));
  });

  router.delete("/api-keys/:id", async (req, res) => {
    const keyId = uuidParam(req.params.id, "api key");
    const revoked = await revokeApiKey(db, keyId);
    if (!revoked) throw notFound(`No api key found with id '${keyId}'.`, "api_key_not_found");
    authenticator.forgetUser(revoked.userId);
    audit("api_keys.revoke", { api_key_id: keyId });
    res.json({ id: keyId, object: "api_key", revoked: true });
  });

  router.get("/stats", async (_req, res) => {
    const s = await stats(db);
    res.json({
      object: "stats",
      users: s.users,
      active_keys: s.activeKeys,
      requests_today: s.requestsToday,
      tokens_today: s.tokensToday,
    });
  });

  return router;
}
