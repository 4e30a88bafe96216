import { createHash, timingSafeEqual } from "node:crypto";
import type { NextFunction, Request, Response } from "express";
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
  type UserChanges,
  updateUser,
} from "../../identity";
import type { Logger } from "../../log";
import { parseBody, uuidParam } from "../../validation";
import { ApiRouter, json } from "../api-router";
import { listOf } from "../schemas";
import {
  ApiKey,
  apiKeyJson,
  CreatedApiKey,
  CreatedUser,
  createdApiKeyJson,
  list,
  RevokedApiKey,
  ServiceStats,
  statsJson,
  User,
  userJson,
} from "./views";

export interface AdminRoutesDeps {
  db: Database;
  tiers: Tiers;
  authenticator: Authenticator;
  userChanges: UserChanges;
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
    // Authorization: Bearer, or X-API-Key (the Multiverse gateway's convention).
    const presented = /^Bearer\s+(\S+)$/i.exec(req.get("authorization") ?? "")?.[1] ?? req.get("x-api-key");
    if (!presented || !timingSafeEqual(digest(presented), expected)) {
      throw new ApiError(401, "Invalid admin API key.", "invalid_request_error", "invalid_api_key");
    }
    next();
  };
}

export function adminRoutes({ db, tiers, userChanges, logger, adminApiKey }: AdminRoutesDeps): ApiRouter {
  const api = new ApiRouter("Admin");
  api.use(adminGuard(adminApiKey));

  const tier = z.enum([...tiers.byName.keys()] as [string, ...string[]], {
    message: `must be one of ${[...tiers.byName.keys()].join(", ")}`,
  });
  const limit = z.number().int().positive().max(100_000_000).nullable();
  const newUser = z.strictObject({ email: z.email().max(320), tier: tier.optional() }).meta({ id: "NewUser" });
  const userPatch = z
    .strictObject({ tier: tier.optional(), is_active: z.boolean().optional() })
    .refine((c) => c.tier !== undefined || c.is_active !== undefined, { message: "nothing to change" })
    .meta({ id: "UserChanges" });
  const newKey = z
    .strictObject({
      name: z.string().trim().min(1).max(100).optional(),
      tier: tier.nullable().optional(),
      rate_limit_per_minute: limit.optional(),
      rate_limit_per_day: limit.optional(),
      expires_at: z.iso
        .datetime({ offset: true })
        .transform((v) => new Date(v))
        .optional(),
    })
    .meta({ id: "NewApiKeyForUser" });

  const pageQuery = z.object({
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    offset: z.coerce.number().int().min(0).default(0),
  });

  const audit = (action: string, fields: Record<string, unknown>) => logger.info("admin action", { action, ...fields });

  api.route(
    {
      method: "post",
      path: "/users",
      summary: "Create a user (and a first API key)",
      access: "admin",
      body: newUser,
      responses: { 201: { description: "The user and its first key, shown this once.", content: json(CreatedUser) } },
      errors: [409],
    },
    async (req, res) => {
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
    },
  );

  api.route(
    {
      method: "get",
      path: "/users",
      summary: "List users",
      access: "admin",
      query: pageQuery,
      responses: { 200: { description: "A page of users.", content: json(listOf(User)) } },
    },
    async (req, res) => {
      const page = parseBody(pageQuery, req.query);
      res.json(list((await listUsers(db, page.limit, page.offset)).map(userJson)));
    },
  );

  api.route(
    {
      method: "patch",
      path: "/users/:id",
      summary: "Change a user's tier or suspend/reactivate them",
      access: "admin",
      body: userPatch,
      responses: { 200: { description: "The user.", content: json(User) } },
      errors: [404],
    },
    async (req, res) => {
      const userId = uuidParam(req.params.id, "user");
      const body = parseBody(userPatch, req.body);
      const user = await updateUser(db, userId, { tier: body.tier, isActive: body.is_active });
      if (!user) throw notFound(`No user found with id '${userId}'.`, "user_not_found");
      await userChanges.announce(userId);
      audit("users.update", { target_user_id: userId, tier: body.tier, is_active: body.is_active });
      res.json(userJson(user));
    },
  );

  api.route(
    {
      method: "post",
      path: "/users/:id/api-keys",
      summary: "Create an API key for a user, optionally with its own tier and limits",
      access: "admin",
      body: newKey,
      responses: { 201: { description: "The key, shown this once.", content: json(CreatedApiKey) } },
      errors: [404],
    },
    async (req, res) => {
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
    },
  );

  api.route(
    {
      method: "get",
      path: "/users/:id/api-keys",
      summary: "List a user's API keys",
      access: "admin",

      responses: { 200: { description: "The keys.", content: json(listOf(ApiKey)) } },
      errors: [404],
    },
    async (req, res) => {
      const userId = uuidParam(req.params.id, "user");
      if (!(await findUser(db, userId))) throw notFound(`No user found with id '${userId}'.`, "user_not_found");
      res.json(list((await listApiKeys(db, userId)).map(apiKeyJson)));
    },
  );

  api.route(
    {
      method: "delete",
      path: "/api-keys/:id",
      summary: "Revoke any API key",
      access: "admin",

      responses: { 200: { description: "Revoked.", content: json(RevokedApiKey) } },
      errors: [404],
    },
    async (req, res) => {
      const keyId = uuidParam(req.params.id, "api key");
      const revoked = await revokeApiKey(db, keyId);
      if (!revoked) throw notFound(`No api key found with id '${keyId}'.`, "api_key_not_found");
      await userChanges.announce(revoked.userId);
      audit("api_keys.revoke", { api_key_id: keyId });
      res.json({ id: keyId, object: "api_key", revoked: true });
    },
  );

  api.route(
    {
      method: "get",
      path: "/stats",
      summary: "Service-wide totals",
      access: "admin",

      responses: { 200: { description: "Totals.", content: json(ServiceStats) } },
    },
    async (_req, res) => {
      const s = await stats(db);
      res.json(statsJson(s));
    },
  );

  return api;
}
