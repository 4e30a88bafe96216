import { z } from "zod";
import type { Accounts, UserData } from "../../app";
import type { Database } from "../../db";
import { NotFoundError } from "../../errors";
import { accountSummary, listApiKeys, type UserSettings, userSettings } from "../../identity";
import type { ProviderKeys } from "../../provider-keys";
import { idParams } from "../../validation";
import { ApiRouter, json } from "../api-router";
import { principalOf } from "../guards";
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
  MemoryView,
  memoryJson,
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

const MemoryModeSchema = z.enum(["on", "off", "read-only", "write-only"]);

const settingsSchema = z
  .strictObject({
    response_cache: z
      .enum(["off", "exact", "semantic"])
      .nullable()
      .optional()
      .meta({ description: "Default for requests without x-perpetual-cache; null: the deployment's RESPONSE_CACHE." }),
    memory_mode: MemoryModeSchema.nullable()
      .optional()
      .meta({ description: "Default for requests without x-perpetual-memory; null: MEMORY_DEFAULT_MODE." }),
  })
  .meta({ id: "UserSettingsUpdate" });

const Settings = z
  .strictObject({
    object: z.literal("user.settings"),
    response_cache: z.enum(["off", "exact", "semantic"]).nullable(),
    memory_mode: MemoryModeSchema.nullable(),
  })
  .meta({ id: "UserSettings" });

const UserExportView = z
  .strictObject({
    object: z.literal("user.export"),
    exported_at: z.iso.datetime(),
    account: Account,
    settings: Settings,
    api_keys: z.array(ApiKey),
    provider_keys: z.array(ProviderKey),
    usage: z.array(z.looseObject({})).meta({ description: "Every usage record (usage_logs), oldest first." }),
    responses: z.array(z.looseObject({})).meta({ description: "Responses stored for /v1/responses." }),
    memories: z.array(MemoryView),
    pending_memories: z
      .array(z.looseObject({}))
      .meta({ description: "Exchanges recorded but not yet written to memory (the write-back outbox)." }),
  })
  .meta({ id: "UserExport" });

const settingsJson = (settings: UserSettings) => ({
  object: "user.settings",
  response_cache: settings.responseCache,
  memory_mode: settings.memoryMode,
});

export interface AccountRoutesDeps {
  db: Database;
  accounts: Accounts;
  userData: UserData;
  providerKeys: ProviderKeys;
}

const accountGone = () => new NotFoundError("This account no longer exists.", { code: "user_not_found" });

/** The caller's own account: profile, Perpetual API keys, provider keys. Every query runs as the caller (RLS). */
export function accountRoutes({ db, accounts, userData, providerKeys }: AccountRoutesDeps): ApiRouter {
  const api = new ApiRouter("Account");

  api.route(
    {
      method: "get",
      path: "/me",
      summary: "The caller's profile and lifetime usage totals",
      access: "api_key",
      responses: { 200: { description: "The account.", content: json(Account) } },
      errors: [404],
    },
    async (_input, res) => {
      const { userId } = principalOf(res);
      const account = await db.asUser(userId, (tx) => accountSummary(tx, userId));
      if (!account) throw accountGone();
      res.json(accountJson(account));
    },
  );

  api.route(
    {
      method: "get",
      path: "/me/settings",
      summary: "The caller's own settings (the defaults of their requests' response cache and memory mode)",
      access: "api_key",
      responses: { 200: { description: "The settings.", content: json(Settings) } },
      errors: [404],
    },
    async (_input, res) => {
      const { userId } = principalOf(res);
      const settings = await db.asUser(userId, (tx) => userSettings(tx, userId));
      if (!settings) throw accountGone();
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
    async ({ body }, res) => {
      const changes = {
        ...(body.response_cache === undefined ? {} : { responseCache: body.response_cache }),
        ...(body.memory_mode === undefined ? {} : { memoryMode: body.memory_mode }),
      };
      res.json(settingsJson(await accounts.updateSettings(principalOf(res).userId, changes)));
    },
  );

  api.route(
    {
      method: "get",
      path: "/me/export",
      summary: "Everything Perpetual holds about the caller, as one JSON document",
      description:
        "GDPR access and portability: the account, settings, API key and provider key metadata (never a key), " +
        "every usage record, stored responses, memories, and exchanges still on their way into memory.",
      access: "api_key",
      responses: { 200: { description: "The export.", content: json(UserExportView) } },
      errors: [404, 503],
    },
    async (_input, res) => {
      const held = await userData.export(principalOf(res).userId);
      if (!held) throw accountGone();
      res.set("content-disposition", 'attachment; filename="perpetual-export.json"').json({
        object: "user.export",
        exported_at: new Date().toISOString(),
        account: accountJson(held.account),
        settings: settingsJson(held.settings),
        api_keys: held.apiKeys.map(apiKeyJson),
        provider_keys: held.providerKeys.map(providerKeyJson),
        usage: held.usage,
        responses: held.responses,
        memories: held.memories.map(memoryJson),
        pending_memories: held.pendingMemories,
      });
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
    async (_input, res) => {
      const { userId } = principalOf(res);
      const deleted = await userData.erase(userId);
      res.json({ id: userId, object: "user", deleted: true, deleted_rows: deleted });
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
    async ({ body }, res) => {
      const { userId } = principalOf(res);
      const created = await accounts.createApiKey({ user: userId }, userId, {
        name: body.name,
        expiresAt: body.expires_at,
      });
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
    async (_input, res) => {
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
      params: idParams("api key"),
      responses: { 200: { description: "Revoked.", content: json(RevokedApiKey) } },
      errors: [404],
    },
    async ({ params }, res) => {
      await accounts.revokeApiKey({ user: principalOf(res).userId }, params.id);
      res.json({ id: params.id, object: "api_key", revoked: true });
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
    async ({ body }, res) => {
      res.json(providerKeyJson(await userData.addProviderKey(principalOf(res).userId, body.provider, body.api_key)));
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
    async (_input, res) => {
      res.json(list((await providerKeys.list(principalOf(res).userId)).map(providerKeyJson)));
    },
  );

  api.route(
    {
      method: "delete",
      path: "/provider-keys/:provider",
      summary: "Delete the caller's key for a provider",
      access: "api_key",
      params: z.object({ provider: z.string().toLowerCase() }),
      responses: { 200: { description: "Deleted.", content: json(DeletedProviderKey) } },
      errors: [404],
    },
    async ({ params }, res) => {
      await userData.removeProviderKey(principalOf(res).userId, params.provider);
      res.json({ object: "provider_key", provider: params.provider, deleted: true });
    },
  );

  return api;
}
