import { Router } from "express";
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
} from "../../identity";
import type { ProviderKeys } from "../../provider-keys";
import { parseBody, uuidParam } from "../../validation";
import { principalOf, requireUser } from "../authentication";
import { accountJson, apiKeyJson, createdApiKeyJson, list, providerKeyJson } from "./views";

const newApiKeySchema = z.strictObject({
  name: z.string().trim().min(1).max(100).optional(),
  expires_at: z.iso
    .datetime({ offset: true })
    .transform((v) => new Date(v))
    .refine((d) => d.getTime() > Date.now(), { message: "must be in the future" })
    .optional(),
});

const newProviderKeySchema = z.object({
  provider: z.string().trim().toLowerCase().min(1).max(50),
  api_key: z
    .string()
    .trim()
    .min(8, { message: "is too short to be a provider API key" })
    .max(1000)
    .regex(/^[\x21-\x7e]+$/, { message: "must be printable characters without spaces" }),
});

export interface AccountRoutesDeps {
  db: Database;
  authenticator: Authenticator;
  providerKeys: ProviderKeys;
}

/** The caller's own account: profile, Perpetual API keys, provider keys. Every query runs as the caller (RLS). */
export function accountRoutes({ db, authenticator, providerKeys }: AccountRoutesDeps): Router {
  const router = Router();
  router.use(["/me", "/api-keys", "/provider-keys"], requireUser(authenticator));

  router.get("/me", async (_req, res) => {
    const { userId } = principalOf(res);
    const account = await db.asUser(userId, (tx) => accountSummary(tx, userId));
    if (!account) throw notFound("This account no longer exists.", "user_not_found");
    res.json(accountJson(account));
  });

  router.delete("/me", async (_req, res) => {
    const { userId } = principalOf(res);
    const deleted = await db.asUser(userId, (tx) => deleteAccount(tx, userId));
    authenticator.forgetUser(userId);
    providerKeys.forgetUser(userId);
    res.json({ id: userId, object: "user", deleted: true, deleted_rows: deleted });
  });

  router.post("/api-keys", async (req, res) => {
    const { userId } = principalOf(res);
    const body = parseBody(newApiKeySchema, req.body);
    const created = await db.asUser(userId, (tx) =>
      createApiKey(tx, userId, { name: body.name, expiresAt: body.expires_at }),
    );
    res.status(201).json(createdApiKeyJson(created));
  });

  router.get("/api-keys", async (_req, res) => {
    const { userId } = principalOf(res);
    const keys = await db.asUser(userId, (tx) => listApiKeys(tx, userId));
    res.json(list(keys.map(apiKeyJson)));
  });

  router.delete("/api-keys/:id", async (req, res) => {
    const { userId } = principalOf(res);
    const keyId = uuidParam(req.params.id, "api key");
    const revoked = await db.asUser(userId, (tx) => revokeApiKey(tx, keyId));
    if (!revoked) throw notFound(`No api key found with id '${keyId}'.`, "api_key_not_found");
    authenticator.forgetUser(userId);
    res.json({ id: keyId, object: "api_key", revoked: true });
  });

  router.post("/provider-keys/add", async (req, res) => {
    const { userId } = principalOf(res);
    const body = parseBody(newProviderKeySchema, req.body);
    res.json(providerKeyJson(await providerKeys.add(userId, body.provider, body.api_key)));
  });

  router.get("/provider-keys", async (_req, res) => {
    res.json(list((await providerKeys.list(principalOf(res).userId)).map(providerKeyJson)));
  });

  router.delete("/provider-keys/:provider", async (req, res) => {
    const provider = String(req.params.provider).toLowerCase();
    if (!(await providerKeys.remove(principalOf(res).userId, provider))) {
      throw notFound(`No API key found for provider ${provider}.`, "provider_key_not_found", "provider");
    }
    res.json({ object: "provider_key", provider, deleted: true });
  });

  return router;
}
