import { createHash, randomBytes } from "node:crypto";
import { exportSPKI, importJWK, SignJWT } from "jose";
import { type Database, migrate, openPostgres } from "../../src/db";
import { type FakeSupabaseAuth, startFakeSupabaseAuth } from "../fakes/supabase-auth";
import { startTestApp, type TestApp, testConfig } from "../helpers/app";
import { jsonClient } from "../helpers/http";
import { captureLogger } from "../helpers/logs";
import { createTestDatabase } from "../helpers/postgres";

const ADMIN_KEY = `admin-${randomBytes(24).toString("hex")}`;
const OPENAI_KEY = `sk-proj-${randomBytes(20).toString("hex")}`;
const ANTHROPIC_KEY = `sk-ant-api03-${randomBytes(20).toString("hex")}`;
const OTHER_OPENAI_KEY = `sk-proj-${randomBytes(20).toString("hex")}`;

describe("Identity and the provider-key vault over HTTP, on PostgreSQL 15", () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;
  let supabase: FakeSupabaseAuth;
  let app: TestApp;
  const logs = captureLogger("debug");
  let client: ReturnType<typeof jsonClient>;
  const perpetualKeys: string[] = [];

  const env = () => ({
    DATABASE_URL: database.url,
    ADMIN_API_KEY: ADMIN_KEY,
    SUPABASE_URL: supabase.url,
    SUPABASE_KEY: supabase.anonKey,
    SUPABASE_JWT_SECRET: supabase.jwtSecret,
    AUTH_CACHE_TTL_SECONDS: "0",
    LOG_LEVEL: "debug",
  });

  async function newUser(email: string, tier?: string) {
    const res = await client.call("POST", "/admin/users", { token: ADMIN_KEY, body: { email, tier } });
    expect(res.status).toBe(201);
    perpetualKeys.push(res.body.api_key.key);
    return { id: res.body.id as string, key: res.body.api_key.key as string, keyId: res.body.api_key.id as string };
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    db = openPostgres({ url: database.url, poolSize: 5 });
    await migrate(db);
    supabase = await startFakeSupabaseAuth();
    app = await startTestApp({ db, config: testConfig(env()), logger: logs.logger });
    client = jsonClient(app.baseUrl);
  });

  afterAll(async () => {
    await app.close();
    await supabase.close();
    await db.close();
    await database.drop();
  });

  describe("Perpetual API keys", () => {
    test("When an admin creates a user, then the key is shown once, only its hash is stored, and it authenticates", async () => {
      const user = await newUser("alice@example.com");
      expect(user.key).toMatch(/^sk-perp-[0-9A-Za-z]{40}$/);
      const [row] = await db.query<Record<string, unknown>>("select * from api_keys where id = $1", [user.keyId]);
      expect(row!.key_hash).toBe(createHash("sha256").update(user.key).digest("hex"));
      expect(JSON.stringify(row)).not.toContain(user.key.slice(8));
      const me = await client.call("GET", "/v1/me", { token: user.key });
      expect(me.status).toBe(200);
      expect(me.body).toMatchObject({ id: user.id, email: "alice@example.com", tier: "free", totals: { requests: 0 } });
      const listed = await client.call("GET", "/v1/api-keys", { token: user.key });
      expect(listed.body.data).toHaveLength(1);
      expect(listed.body.data[0].display).toBe(`${user.key.slice(0, 12)}…${user.key.slice(-4)}`);
      expect(listed.text).not.toContain(user.key);
      expect(listed.body.data[0].key).toBeUndefined();
    });

    test("When a user creates and revokes a key, then the revoked key gets the same 401 as an unknown key", async () => {
      const user = await newUser("bob@example.com");
      const created = await client.call("POST", "/v1/api-keys", { token: user.key, body: { name: "ci" } });
      expect(created.status).toBe(201);
      perpetualKeys.push(created.body.key);
      expect((await client.call("GET", "/v1/me", { token: created.body.key })).status).toBe(200);
      const revoked = await client.call("DELETE", `/v1/api-keys/${created.body.id}`, { token: user.key });
      expect(revoked.body).toEqual({ id: created.body.id, object: "api_key", revoked: true });
      const withRevoked = await client.call("GET", "/v1/me", { token: created.body.key });
      const withUnknown = await client.call("GET", "/v1/me", { token: `sk-perp-${"A".repeat(40)}` });
      const withGarbage = await client.call("GET", "/v1/me", { token: "sk-perp-short" });
      expect(withRevoked.status).toBe(401);
      expect(withRevoked.body).toEqual(withUnknown.body);
      expect(withGarbage.body).toEqual(withUnknown.body);
      expect(withUnknown.body).toEqual({
        error: { message: expect.any(String), type: "invalid_request_error", param: null, code: "invalid_api_key" },
      });
      expect(withUnknown.text).not.toMatch(/api_keys|hash|sha/i);
      expect((await client.call("GET", "/v1/me", { token: user.key })).status).toBe(200);
    });

    test("When no credentials or a malformed header is sent, then 401 invalid_api_key", async () => {
      const none = await client.call("GET", "/v1/me");
      expect(none.status).toBe(401);
      expect(none.body.error.code).toBe("invalid_api_key");
      const basic = await fetch(`${app.baseUrl}/v1/me`, { headers: { authorization: "Basic dXNlcjpwYXNz" } });
      expect(basic.status).toBe(401);
    });

    test("When a user tries to revoke another user's key, then it is not found and keeps working", async () => {
      const carol = await newUser("carol@example.com");
      const dave = await newUser("dave@example.com");
      const attempt = await client.call("DELETE", `/v1/api-keys/${carol.keyId}`, { token: dave.key });
      expect(attempt.status).toBe(404);
      expect((await client.call("GET", "/v1/me", { token: carol.key })).status).toBe(200);
      expect((await client.call("DELETE", "/v1/api-keys/not-a-uuid", { token: dave.key })).status).toBe(404);
    });

    test("When a key has expired, then it is refused", async () => {
      const user = await newUser("erin@example.com");
      await db.query("update api_keys set expires_at = now() - interval '1 second' where id = $1", [user.keyId]);
      expect((await client.call("GET", "/v1/me", { token: user.key })).status).toBe(401);
    });

    test("When a key is used, then last_used is recorded off the request path", async () => {
      const user = await newUser("frank@example.com");
      await client.call("GET", "/v1/me", { token: user.key });
      for (let i = 0; i < 50; i++) {
        const [row] = await db.query<{ last_used: Date | null }>("select last_used from api_keys where id = $1", [
          user.keyId,
        ]);
        if (row!.last_used) return;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error("last_used was never written");
    });

    test("When a key is revoked on another replica (no Redis), then this replica refuses it within twice the cache TTL", async () => {
      const user = await newUser("grace@example.com");
      const replica = await startTestApp({ db, config: testConfig({ ...env(), AUTH_CACHE_TTL_SECONDS: "1" }) });
      try {
        const other = jsonClient(replica.baseUrl);
        expect((await other.call("GET", "/v1/api-keys", { token: user.key })).status).toBe(200);
        expect((await client.call("DELETE", `/admin/api-keys/${user.keyId}`, { token: ADMIN_KEY })).status).toBe(200);
        // 1 s fresh, then at most 1 s more served while a background lookup refreshes it.
        await new Promise((r) => setTimeout(r, 2_100));
        expect((await other.call("GET", "/v1/api-keys", { token: user.key })).status).toBe(401);
      } finally {
        await replica.close();
      }
    });
  });

  describe("Admin API", () => {
    test("When the admin key is missing or wrong, then /admin is refused and the attempt reveals nothing", async () => {
      expect((await client.call("GET", "/admin/stats")).status).toBe(401);
      const wrong = await client.call("GET", "/admin/stats", { token: `${ADMIN_KEY}x` });
      expect(wrong.status).toBe(401);
      expect(wrong.body.error.code).toBe("invalid_api_key");
      const userKey = (await newUser("henry@example.com")).key;
      expect((await client.call("GET", "/admin/users", { token: userKey })).status).toBe(401);
      // X-API-Key (the Multiverse gateway's convention) is the same key in another header, checked the same way.
      const viaHeader = (key: string) => fetch(`${app.baseUrl}/admin/stats`, { headers: { "x-api-key": key } });
      expect((await viaHeader(ADMIN_KEY)).status).toBe(200);
      expect((await viaHeader(`${ADMIN_KEY}x`)).status).toBe(401);
      expect((await viaHeader(userKey)).status).toBe(401);
    });

    test("When an admin sets a tier, disables a user and issues keys, then each takes effect at once", async () => {
      const user = await newUser("ivy@example.com");
      const upgraded = await client.call("PATCH", `/admin/users/${user.id}`, {
        token: ADMIN_KEY,
        body: { tier: "pro" },
      });
      expect(upgraded.body.tier).toBe("pro");
      expect((await client.call("GET", "/v1/me", { token: user.key })).body.tier).toBe("pro");
      const badTier = await client.call("PATCH", `/admin/users/${user.id}`, {
        token: ADMIN_KEY,
        body: { tier: "platinum" },
      });
      expect(badTier.status).toBe(400);
      expect(badTier.body.error.param).toBe("tier");
      const issued = await client.call("POST", `/admin/users/${user.id}/api-keys`, {
        token: ADMIN_KEY,
        body: { name: "batch", tier: "enterprise", rate_limit_per_minute: 5 },
      });
      expect(issued.status).toBe(201);
      perpetualKeys.push(issued.body.key);
      expect(issued.body).toMatchObject({ tier: "enterprise", rate_limit_per_minute: 5 });
      expect((await client.call("GET", "/v1/me", { token: issued.body.key })).status).toBe(200);
      await client.call("PATCH", `/admin/users/${user.id}`, { token: ADMIN_KEY, body: { is_active: false } });
      const disabled = await client.call("GET", "/v1/me", { token: user.key });
      expect(disabled.status).toBe(403);
      expect(disabled.body.error.code).toBe("account_disabled");
      const listed = await client.call("GET", `/admin/users/${user.id}/api-keys`, { token: ADMIN_KEY });
      expect(listed.body.data).toHaveLength(2);
      expect(listed.text).not.toContain(issued.body.key);
    });

    test("When an email is taken or invalid, then the admin gets 409 or 400", async () => {
      await newUser("jack@example.com");
      const again = await client.call("POST", "/admin/users", {
        token: ADMIN_KEY,
        body: { email: "JACK@example.com" },
      });
      expect(again.status).toBe(409);
      expect(again.body.error.code).toBe("email_taken");
      const invalid = await client.call("POST", "/admin/users", { token: ADMIN_KEY, body: { email: "nope" } });
      expect(invalid.status).toBe(400);
      expect(invalid.body.error.param).toBe("email");
    });

    test("When stats are requested, then they count users, active keys and today's usage", async () => {
      const user = await newUser("kate@example.com");
      await db.query(
        "insert into usage_logs (user_id, request_id, endpoint, model, total_tokens) values ($1, 'req-stats', 'chat', 'gpt-4o', 42)",
        [user.id],
      );
      const res = await client.call("GET", "/admin/stats", { token: ADMIN_KEY });
      const [counts] = await db.query<{ users: number }>("select count(*)::int as users from users");
      expect(res.body).toMatchObject({ object: "stats", users: counts!.users, requests_today: 1, tokens_today: 42 });
      expect(res.body.active_keys).toBeGreaterThan(0);
    });

    test("When admin actions are logged, then the log names the action and never the admin key", () => {
      const lines = logs.lines.filter((l) => l.includes('"audit"'));
      expect(lines.some((l) => l.includes('"action":"users.create"'))).toBe(true);
      expect(lines.some((l) => l.includes('"action":"users.update"'))).toBe(true);
      expect(logs.text()).not.toContain(ADMIN_KEY);
    });
  });

  describe("Provider keys (BYOK)", () => {
    test("When a user adds, lists, replaces and deletes a provider key, then only ciphertext is stored and last4 is shown", async () => {
      const user = await newUser("liam@example.com");
      const added = await client.call("POST", "/v1/provider-keys/add", {
        token: user.key,
        body: { provider: "openai", api_key: OPENAI_KEY },
      });
      expect(added.status).toBe(200);
      expect(added.body).toMatchObject({ object: "provider_key", provider: "openai", last4: OPENAI_KEY.slice(-4) });
      const [row] = await db.query<{ encrypted_key: string }>(
        "select encrypted_key from user_provider_keys where user_id = $1",
        [user.id],
      );
      expect(row!.encrypted_key).toMatch(/^v1:[0-9a-f]{12}:/);
      expect(row!.encrypted_key).not.toContain(OPENAI_KEY);
      expect(await app.services.providerKeys.reveal(user.id, "openai")).toBe(OPENAI_KEY);

      await client.call("POST", "/v1/provider-keys/add", {
        token: user.key,
        body: { provider: "OpenAI", api_key: OTHER_OPENAI_KEY },
      });
      await client.call("POST", "/v1/provider-keys/add", {
        token: user.key,
        body: { provider: "anthropic", api_key: ANTHROPIC_KEY },
      });
      const listed = await client.call("GET", "/v1/provider-keys", { token: user.key });
      expect(listed.body.data.map((k: { provider: string; last4: string }) => [k.provider, k.last4])).toEqual([
        ["anthropic", ANTHROPIC_KEY.slice(-4)],
        ["openai", OTHER_OPENAI_KEY.slice(-4)],
      ]);
      expect(await app.services.providerKeys.reveal(user.id, "openai")).toBe(OTHER_OPENAI_KEY);

      expect((await client.call("DELETE", "/v1/provider-keys/anthropic", { token: user.key })).status).toBe(200);
      expect((await client.call("DELETE", "/v1/provider-keys/anthropic", { token: user.key })).status).toBe(404);
      await expect(app.services.providerKeys.reveal(user.id, "anthropic")).rejects.toThrow(
        "No API key found for provider anthropic",
      );
    });

    test.each([
      [{ provider: "nonsense", api_key: "sk-1234567890" }, "provider", "unknown_provider"],
      [{ provider: "openai" }, "api_key", "invalid_value"],
      [{ provider: "openai", api_key: "short" }, "api_key", "invalid_value"],
      [{ provider: "openai", api_key: "has spaces in it" }, "api_key", "invalid_value"],
      [{ api_key: "sk-1234567890" }, "provider", "invalid_value"],
    ])("When the body is %j, then 400 names %s", async (body, param, code) => {
      const user = await newUser(`bad-${randomBytes(4).toString("hex")}@example.com`);
      const res = await client.call("POST", "/v1/provider-keys/add", { token: user.key, body });
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ type: "invalid_request_error", param, code });
    });

    test("When user B attacks user A's provider keys through every endpoint, then A's key is untouched and unseen", async () => {
      const a = await newUser("mia@example.com");
      const b = await newUser("noah@example.com");
      await client.call("POST", "/v1/provider-keys/add", {
        token: a.key,
        body: { provider: "openai", api_key: OPENAI_KEY },
      });
      const [before] = await db.query<{ encrypted_key: string }>(
        "select encrypted_key from user_provider_keys where user_id = $1",
        [a.id],
      );

      expect((await client.call("GET", "/v1/provider-keys", { token: b.key })).body.data).toEqual([]);
      expect((await client.call("DELETE", "/v1/provider-keys/openai", { token: b.key })).status).toBe(404);
      await client.call("POST", "/v1/provider-keys/add", {
        token: b.key,
        body: { provider: "openai", api_key: OTHER_OPENAI_KEY },
      });
      await expect(app.services.providerKeys.reveal(b.id, "openai")).resolves.toBe(OTHER_OPENAI_KEY);

      const [after] = await db.query<{ encrypted_key: string }>(
        "select encrypted_key from user_provider_keys where user_id = $1",
        [a.id],
      );
      expect(after!.encrypted_key).toBe(before!.encrypted_key);
      expect(await app.services.providerKeys.reveal(a.id, "openai")).toBe(OPENAI_KEY);
      const seenByB = await db.asUser(b.id, (tx) =>
        tx.query("select * from user_provider_keys where user_id = $1", [a.id]),
      );
      expect(seenByB).toEqual([]);

      // A ciphertext copied into B's row must not decrypt as B's key.
      await db.query("update user_provider_keys set encrypted_key = $1 where user_id = $2", [
        before!.encrypted_key,
        b.id,
      ]);
      await expect(app.services.providerKeys.reveal(b.id, "openai")).rejects.toThrow(/^Encryption error$/);
    });
  });

  describe("Supabase Auth JWTs", () => {
    test("When a valid ES256 token from the project's JWKS arrives, then the user is provisioned with the default tier", async () => {
      const userId = crypto.randomUUID();
      const token = await supabase.accessToken(userId, { email: "jwt-user@example.com" });
      const me = await client.call("GET", "/v1/me", { token });
      expect(me.status).toBe(200);
      expect(me.body).toMatchObject({ id: userId, email: "jwt-user@example.com", tier: "free" });
      const [row] = await db.query<{ email: string }>("select email from users where id = $1", [userId]);
      expect(row!.email).toBe("jwt-user@example.com");
      expect(
        (
          await client.call("POST", "/v1/provider-keys/add", {
            token,
            body: { provider: "groq", api_key: "gsk_abcdefghijklmnop" },
          })
        ).status,
      ).toBe(200);
    });

    test("When a valid legacy HS256 token arrives, then it is accepted", async () => {
      const token = await supabase.legacyToken(crypto.randomUUID());
      expect((await client.call("GET", "/v1/me", { token })).status).toBe(200);
    });

    test("When tokens are expired, from another issuer or audience, unsigned, confused or tampered, then each gets 401", async () => {
      const userId = crypto.randomUUID();
      const good = await supabase.accessToken(userId);
      const [header, payload, signature] = good.split(".");
      const forgedPayload = Buffer.from(
        JSON.stringify({ ...JSON.parse(Buffer.from(payload!, "base64url").toString()), sub: crypto.randomUUID() }),
      ).toString("base64url");
      const publicPem = await exportSPKI(
        (await importJWK(supabase.publicJwk, "ES256")) as Parameters<typeof exportSPKI>[0],
      );
      const now = Math.floor(Date.now() / 1000);
      const claims = {
        sub: userId,
        aud: "authenticated",
        role: "authenticated",
        iss: `${supabase.url}/auth/v1`,
        exp: now + 3600,
      };
      const unsigned = `${Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url")}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.`;
      const confused = await new SignJWT(claims)
        .setProtectedHeader({ alg: "HS256" })
        .sign(new TextEncoder().encode(publicPem));
      const confusedJwk = await new SignJWT(claims)
        .setProtectedHeader({ alg: "HS256" })
        .sign(new TextEncoder().encode(JSON.stringify(supabase.publicJwk)));
      const rejected = {
        expired: await supabase.accessToken(userId, { exp: now - 10 }),
        wrongIssuer: await supabase.accessToken(userId, { iss: "https://evil.example/auth/v1" }),
        wrongAudience: await supabase.accessToken(userId, { aud: "anon" }),
        serviceRole: await supabase.accessToken(userId, { role: "service_role" }),
        notAUser: await supabase.accessToken("not-a-uuid"),
        unsigned,
        confused,
        confusedJwk,
        tampered: `${header}.${forgedPayload}.${signature}`,
        hs256WrongSecret: await new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(randomBytes(32)),
      };
      for (const [name, token] of Object.entries(rejected)) {
        const res = await client.call("GET", "/v1/me", { token });
        expect([name, res.status, res.body.error?.code]).toEqual([name, 401, "invalid_api_key"]);
      }
      const provisioned = await db.query("select 1 from users where id = $1", [userId]);
      expect(provisioned).toEqual([]);
    });

    test("When remote verification is on and Supabase ends the session, then the token stops working", async () => {
      const remote = await startTestApp({ db, config: testConfig({ ...env(), SUPABASE_AUTH_VERIFY: "remote" }) });
      try {
        const remoteClient = jsonClient(remote.baseUrl);
        const userId = crypto.randomUUID();
        expect((await remoteClient.call("GET", "/v1/me", { token: await supabase.accessToken(userId) })).status).toBe(
          200,
        );
        supabase.revokeSessions(userId);
        expect((await remoteClient.call("GET", "/v1/me", { token: await supabase.accessToken(userId) })).status).toBe(
          401,
        );
      } finally {
        await remote.close();
      }
    });
  });

  describe("Account", () => {
    test("When a user deletes their account, then every row they own is gone and their keys stop working", async () => {
      const user = await newUser("olivia@example.com");
      const second = await client.call("POST", "/v1/api-keys", { token: user.key, body: {} });
      perpetualKeys.push(second.body.key);
      await client.call("POST", "/v1/provider-keys/add", {
        token: user.key,
        body: { provider: "openai", api_key: OPENAI_KEY },
      });
      await db.query(
        "insert into usage_logs (user_id, request_id, endpoint, model, prompt_tokens, completion_tokens, total_tokens, cost_usd) values ($1, 'req-gdpr', 'chat', 'gpt-4o', 7, 3, 10, 0.25)",
        [user.id],
      );
      const me = await client.call("GET", "/v1/me", { token: user.key });
      expect(me.body.totals).toEqual({
        requests: 1,
        prompt_tokens: 7,
        completion_tokens: 3,
        total_tokens: 10,
        cost_usd: 0.25,
      });

      const deleted = await client.call("DELETE", "/v1/me", { token: user.key });
      expect(deleted.body).toEqual({
        id: user.id,
        object: "user",
        deleted: true,
        deleted_rows: {
          responses: 0,
          memory_outbox: 0,
          usage_logs: 1,
          user_provider_keys: 1,
          api_keys: 2,
          users: 1,
          memories: 0,
        },
      });
      for (const table of ["memory_outbox", "usage_logs", "user_provider_keys", "api_keys"]) {
        expect(await db.query(`select 1 from ${table} where user_id = $1`, [user.id])).toEqual([]);
      }
      expect((await client.call("GET", "/v1/me", { token: user.key })).status).toBe(401);
    });
  });

  describe("Leaks", () => {
    test("When the whole suite's key traffic is done at debug level, then no provider key or Perpetual key is in logs or later responses", () => {
      const logText = logs.text();
      expect(logText.length).toBeGreaterThan(1000);
      for (const secret of [OPENAI_KEY, ANTHROPIC_KEY, OTHER_OPENAI_KEY, ...perpetualKeys]) {
        expect(logText).not.toContain(secret);
        expect(logText).not.toContain(secret.slice(8, 30));
      }
      const responses = client.transcript.join("\n");
      for (const secret of [OPENAI_KEY, ANTHROPIC_KEY, OTHER_OPENAI_KEY]) expect(responses).not.toContain(secret);
      // A Perpetual key appears in exactly one response: the one that created it.
      for (const key of perpetualKeys) expect(client.transcript.filter((t) => t.includes(key))).toHaveLength(1);
    });
  });
});
