import { z } from "zod";
import type { Database } from "../../db";
import { notFound } from "../../errors";
import {
  type Authenticator,
  accountSummary,
  createApiKey,
  deleteAccount,
  listApiKeys,
  revokeApiKey,
  type UserChanges,
  type UserSettings,
  updateUserSettings,
  userSettings,
} from "../../identity";
import type { MemoryService } from "../../memory";
import type { ProviderKeys } from "../../provider-keys";
import { parseBody, uuidParam } from "../../validation";
import { ApiRouter, json } from "../api-router";
import { principalOf, requireUser } from "../authentication";
import { listOf } from "../schemas";
import {
  Account,
  ApiKey,
  accountJson,
  apiKeyJson,
  CreatedApiKey,
  createdApiKeyJson,
  DeletedAccount,
  DeletedProviderKey,
  list,
  ProviderKey,
  providerKeyJson,
  RevokedApiKey,
} from "./views";

const newApiKeySchema = z
  .strictObject({
    name: z.string().trim().min(1).max(100).optional(),
    expires_at: z.iso
      .datetime({ offset: true })
      .transform((v) => new Date(v))
      .refine((d) => d.getTime() > Date.now(), { message: "must be in the future" })
      .optional(),
  })
  .meta({ id: "NewApiKey" });

const newProviderKeySchema = z
  .object({
    provider: z
      .string()
      .trim()
      .toLowerCase()
      .min(1)
      .max(50)
      .meta({ description: "A provider from config/providers.json, e.g. `openai` or `anthropic`." }),
    api_key: z
      .string()
      .trim()
      .min(8, { message: "is too short to be a provider API key" })
      .max(1000)
      .regex(/^[\x21-\x7e]+$/, { message: "must be printable characters without spaces" })
      .meta({ description: "Encrypted at rest (AES-256-GCM) and never returned." }),
  })
  .meta({ id: "NewProviderKey" });

const settingsSchema = z
  .strictObject({
    response_cache: z
      .enum(["off", "exact", "semantic"])
      .nullable()
      .optional()
      .meta({ description: "Default for requests without x-perpetual-cache; null: the deployment's RESPONSE_CACHE." }),
  })
  .meta({ id: "UserSettingsUpdate" });

const Settings = z
  .strictObject({ object: z.literal("user.settings"), response_cache: z.enum(["off", "exact", "semantic"]).nullable() })
  .meta({ id: "UserSettings" });

const settingsJson = (settings: UserSettings) => ({ object: "user.settings", response_cache: settings.responseCache });

export interface AccountRoutesDeps {
  db: Database;
  memory: MemoryService;
  authenticator: Authenticator;
  providerKeys: ProviderKeys;
  userChanges: UserChanges;
}

/** The caller's own account: profile, Perpetual API keys, provider keys. Every query runs as the caller (RLS). */
export function accountRoutes({ db, authenticator, providerKeys, memory, userChanges }: AccountRoutesDeps): ApiRouter {
  const api = new ApiRouter("Account");
  api.use(requireUser(authenticator), ["/me", "/api-keys", "/provider-keys"]);

  api.route(
    {
      method: "get",
      path: "/me",
      summary: "The caller's profile and lifetime usage totals",
      access: "api_key",
      responses: { 200: { description: "The account.", content: json(Account) } },
      errors: [404],
    },
    async (_req, res) => {
      const { userId } = principalOf(res);
      const account = await db.asUser(userId, (tx) => accountSummary(tx, userId));
      if (!account) throw notFound("This account no longer exists.", "user_not_found");
      res.json(accountJson(account));
    },
  );

  api.route(
    {
      method: "get",
      path: "/me/settings",
      summary: "The caller's own settings (the response cache's default for their requests)",
      access: "api_key",
      responses: { 200: { description: "The settings.", content: json(Settings) } },
      errors: [404],
    },
    async (_req, res) => {
      const { userId } = principalOf(res);
      const settings = await db.asUser(userId, (tx) => userSettings(tx, userId));
      if (!settings) throw notFound("This account no longer exists.", "user_not_found");
      res.json(settingsJson(settings));
    },
  );

  api.route(
    {
      method: "patch",
      path: "/me/settings",
      summary: "Change the caller's own settings; fields left out stay as they are",
      access: "api_key",
      body: settingsSchema,
      responses: { 200: { description: "The settings now.", content: json(Settings) } },
      errors: [404],
    },
    async (req, res) => {
      const { userId } = principalOf(res);
      const body = parseBody(settingsSchema, req.body);
      const settings = await db.asUser(userId, (tx) =>
        updateUserSettings(tx, userId, body.response_cache === undefined ? {} : { responseCache: body.response_cache }),
      );
      if (!settings) throw notFound("This account no longer exists.", "user_not_found");
      // Every replica's cached lookup of this user carries the settings: forget it.
      await userChanges.announce(userId);
      res.json(settingsJson(settings));
    },
  );

  api.route(
    {
      method: "delete",
      path: "/me",
      summary: "Erase the caller's account and everything stored for it",
      description: "GDPR erasure: API keys, provider keys, usage records, memories and the user row.",
      access: "api_key",
      responses: { 200: { description: "What was erased.", content: json(DeletedAccount) } },
    },
    async (_req, res) => {
      const { userId } = principalOf(res);
      const deleted = await db.asUser(userId, (tx) => deleteAccount(tx, userId));
      await userChanges.announce(userId);
      // After the rows: the outbox rows are gone, so no worker can write a point of this user again.
      const memories = await memory.forgetUser(userId);
      res.json({ id: userId, object: "user", deleted: true, deleted_rows: { ...deleted, memories } });
    },
  );

  api.route(
    {
      method: "post",
      path: "/api-keys",
      summary: "Create a Perpetual API key",
      access: "api_key",
      body: newApiKeySchema,
      responses: { 201: { description: "The new key, shown this once.", content: json(CreatedApiKey) } },
    },
    async (req, res) => {
      const { userId } = principalOf(res);
      const body = parseBody(newApiKeySchema, req.body);
      const created = await db.asUser(userId, (tx) =>
        createApiKey(tx, userId, { name: body.name, expiresAt: body.expires_at }),
      );
      res.status(201).json(createdApiKeyJson(created));
    },
  );

  api.route(
    {
      method: "get",
      path: "/api-keys",
      summary: "List the caller's API keys (never the keys themselves)",
      access: "api_key",
      responses: { 200: { description: "The keys.", content: json(listOf(ApiKey)) } },
    },
    async (_req, res) => {
      const { userId } = principalOf(res);
      const keys = await db.asUser(userId, (tx) => listApiKeys(tx, userId));
      res.json(list(keys.map(apiKeyJson)));
    },
  );

  api.route(
    {
      method: "delete",
      path: "/api-keys/:id",
      summary: "Revoke one of the caller's API keys",
      access: "api_key",
      responses: { 200: { description: "Revoked.", content: json(RevokedApiKey) } },
      errors: [404],
    },
    async (req, res) => {
      const { userId } = principalOf(res);
      const keyId = uuidParam(req.params.id, "api key");
      const revoked = await db.asUser(userId, (tx) => revokeApiKey(tx, keyId));
      if (!revoked) throw notFound(`No api key found with id '${keyId}'.`, "api_key_not_found");
      await userChanges.announce(userId);
      res.json({ id: keyId, object: "api_key", revoked: true });
    },
  );

  api.route(
    {
      method: "post",
      path: "/provider-keys/add",
      summary: "Store (or replace) the caller's key for a provider",
      access: "api_key",
      body: newProviderKeySchema,
      responses: { 200: { description: "Stored.", content: json(ProviderKey) } },
    },
    async (req, res) => {
      const { userId } = principalOf(res);
      const body = parseBody(newProviderKeySchema, req.body);
      res.json(providerKeyJson(await providerKeys.add(userId, body.provider, body.api_key)));
    },
  );

  api.route(
    {
      method: "get",
      path: "/provider-keys",
      summary: "List the providers the caller has keys for",
      access: "api_key",
      responses: {
        200: { description: "The stored keys (last 4 characters only).", content: json(listOf(ProviderKey)) },
      },
    },
    async (_req, res) => {
      res.json(list((await providerKeys.list(principalOf(res).userId)).map(providerKeyJson)));
    },
  );

  api.route(
    {
      method: "delete",
      path: "/provider-keys/:provider",
      summary: "Delete the caller's key for a provider",
      access: "api_key",
      responses: { 200: { description: "Deleted.", content: json(DeletedProviderKey) } },
      errors: [404],
    },
    async (req, res) => {
      const provider = String(req.params.provider).toLowerCase();
      if (!(await providerKeys.remove(principalOf(res).userId, provider))) {
        throw notFound(`No API key found for provider ${provider}.`, "provider_key_not_found", "provider");
      }
      res.json({ object: "provider_key", provider, deleted: true });
    },
  );

  return api;
}
