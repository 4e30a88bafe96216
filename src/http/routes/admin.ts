import { z } from "zod";
import type { Accounts, Actor } from "../../app";
import type { Tiers } from "../../config";
import type { Database } from "../../db";
import { NotFoundError } from "../../errors";
import { findUser, listApiKeys, listUsers, stats } from "../../identity";
import { idParams } from "../../validation";
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
  accounts: Accounts;
}

const ADMIN: Actor = { operator: "admin_api" };

/** The operator's API (behind ADMIN_API_KEY): users, their keys, service totals. */
export function adminRoutes({ db, tiers, accounts }: AdminRoutesDeps): ApiRouter {
  const api = new ApiRouter("Admin");

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
    async ({ body }, res) => {
      const created = await accounts.createUserWithFirstKey(ADMIN, body.email, body.tier);
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
    async ({ query }, res) => {
      res.json(list((await listUsers(db, query.limit, query.offset)).map(userJson)));
    },
  );

  api.route(
    {
      method: "patch",
      path: "/users/:id",
      summary: "Change a user's tier or suspend/reactivate them",
      access: "admin",
      params: idParams("user"),
      body: userPatch,
      responses: { 200: { description: "The user.", content: json(User) } },
      errors: [404],
    },
    async ({ params, body }, res) => {
      const user = await accounts.updateUser(ADMIN, params.id, { tier: body.tier, isActive: body.is_active });
      res.json(userJson(user));
    },
  );

  api.route(
    {
      method: "post",
      path: "/users/:id/api-keys",
      summary: "Create an API key for a user, optionally with its own tier and limits",
      access: "admin",
      params: idParams("user"),
      body: newKey,
      responses: { 201: { description: "The key, shown this once.", content: json(CreatedApiKey) } },
      errors: [404],
    },
    async ({ params, body }, res) => {
      const key = await accounts.createApiKey(ADMIN, params.id, {
        name: body.name,
        tier: body.tier ?? null,
        rateLimitPerMinute: body.rate_limit_per_minute ?? null,
        rateLimitPerDay: body.rate_limit_per_day ?? null,
        expiresAt: body.expires_at ?? null,
      });
      res.status(201).json(createdApiKeyJson(key));
    },
  );

  api.route(
    {
      method: "get",
      path: "/users/:id/api-keys",
      summary: "List a user's API keys",
      access: "admin",
      params: idParams("user"),
      responses: { 200: { description: "The keys.", content: json(listOf(ApiKey)) } },
      errors: [404],
    },
    async ({ params }, res) => {
      if (!(await findUser(db, params.id))) {
        throw new NotFoundError(`No user found with id '${params.id}'.`, { code: "user_not_found" });
      }
      res.json(list((await listApiKeys(db, params.id)).map(apiKeyJson)));
    },
  );

  api.route(
    {
      method: "delete",
      path: "/api-keys/:id",
      summary: "Revoke any API key",
      access: "admin",
      params: idParams("api key"),
      responses: { 200: { description: "Revoked.", content: json(RevokedApiKey) } },
      errors: [404],
    },
    async ({ params }, res) => {
      await accounts.revokeApiKey(ADMIN, params.id);
      res.json({ id: params.id, object: "api_key", revoked: true });
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
    async (_input, res) => {
      res.json(statsJson(await stats(db)));
    },
  );

  return api;
}
