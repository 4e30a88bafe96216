import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import OpenAI from "openai";
import { type Database, migrate, openPostgres } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { type FakeOpenAiUpstream, startFakeOpenAiUpstream } from "../fakes/openai-upstream";
import {
  customerStateJson,
  type FakePolar,
  type SubscriptionFields,
  signedWebhook,
  startFakePolar,
  subscriptionJson,
} from "../fakes/polar-server";
import { configDirWith, startTestApp, type TestApp, testConfig } from "../helpers/app";
import { TestClock } from "../helpers/clock";
import { jsonClient } from "../helpers/http";
import { createTestDatabase } from "../helpers/postgres";

jest.setTimeout(120_000);

const SECRET = "polar_whs_test_secret_0123456789";
const PRO = "prod_pro_monthly";
const ENTERPRISE = "prod_enterprise_monthly";
const DAY = 86_400_000;

/** Free tier capped at $0.00015 a month: two fake-upstream completions of gpt-4o ($0.00009375 each) reach it. */
const CONFIG_DIR = configDirWith((file) => {
  file.tiers.free!.monthly_spend_cap_usd = 0.00015;
  file.tiers.pro!.polar_product_ids = [PRO];
  file.tiers.enterprise!.polar_product_ids = [ENTERPRISE];
  file.tiers.prepaid = {
    requests_per_minute: 10,
    requests_per_day: 100,
    tokens_per_minute: null,
    tokens_per_day: null,
    prepaid: true,
  };
});

describe("Billing with Polar on PostgreSQL 15 and Redis", () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;
  let redisUrl: string;
  let upstream: FakeOpenAiUpstream;
  let polar: FakePolar;
  let app: TestApp;
  let replica: TestApp;
  // Real pace, shared by both replicas; a test jumps it past an outbox's backoff instead of sleeping.
  const clock = new TestClock(Date.now(), true);

  const env = (extra: Record<string, string> = {}) => ({
    DATABASE_URL: database.url,
    REDIS_URL: redisUrl,
    OPENAI_BASE_URL: upstream.url,
    POLAR_API_KEY: polar.token,
    POLAR_SERVER: polar.url,
    POLAR_WEBHOOK_SECRET: SECRET,
    POLAR_SUCCESS_URL: "https://app.example.com/billing/done",
    // Spend is read with the credential: no caching, so each request sees the spend recorded before it.
    AUTH_CACHE_TTL_SECONDS: "0",
    ...extra,
  });

  async function customer(email: string, tier = "free") {
    const user = await createUser(db, email, tier);
    const key = (await createApiKey(db, user.id)).key;
    await app.services.providerKeys.add(user.id, "openai", `sk-proj-${randomBytes(12).toString("hex")}`);
    const client = (on: TestApp = app) => new OpenAI({ apiKey: key, baseURL: `${on.baseUrl}/v1`, maxRetries: 0 });
    return { userId: user.id, key, client };
  }

  const complete = (client: OpenAI, content = "hello") =>
    client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content }] }).withResponse();

  async function deliver(
    type: string,
    data: Record<string, unknown>,
    options: Parameters<typeof signedWebhook>[3] = {},
  ) {
    const hook = signedWebhook(SECRET, type, data, options);
    const res = await fetch(`${app.baseUrl}/v1/billing/polar/webhook`, {
      method: "POST",
      headers: hook.headers,
      body: hook.body,
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown>, hook };
  }

  const subscription = (
    userId: string,
    fields: Partial<SubscriptionFields> & { modifiedAt: Date },
  ): SubscriptionFields => ({
    id: `sub_${userId.slice(0, 8)}`,
    userId,
    productId: PRO,
    status: "active",
    ...fields,
  });

  async function tierOf(userId: string): Promise<string> {
    const res = await jsonClient(app.baseUrl).call("GET", "/v1/billing", { token: keys.get(userId)! });
    return res.body.tier as string;
  }
  const keys = new Map<string, string>();

  beforeAll(async () => {
    database = await createTestDatabase();
    db = openPostgres({ url: database.url, poolSize: 8 });
    await migrate(db);
    const url = new URL(process.env.TEST_REDIS_URL ?? "");
    url.pathname = `/${1 + ((process.pid + 7) % 14)}`;
    redisUrl = url.toString();
    const redis = new Redis(redisUrl);
    await redis.flushdb();
    redis.disconnect();
    upstream = await startFakeOpenAiUpstream();
    polar = await startFakePolar();
    const config = () => testConfig(env(), CONFIG_DIR);
    app = await startTestApp({ db, config: config(), clock: clock.now });
    replica = await startTestApp({ db, config: config(), clock: clock.now });
  });

  afterAll(async () => {
    await replica.close();
    await app.close();
    await polar.close();
    await upstream.close();
    await db.close();
    await database.drop();
  });

  afterEach(() => {
    expect(polar.violations).toEqual([]);
  });

  test("When a webhook's signature is wrong, stale or missing, then 403 and nothing changes; a valid one upgrades, a replay is a no-op", async () => {
    const alice = await customer("alice-billing@example.com");
    keys.set(alice.userId, alice.key);
    const active = subscriptionJson(subscription(alice.userId, { modifiedAt: new Date() }));

    const forged = signedWebhook("polar_whs_not_the_secret_000000", "subscription.active", active);
    const res = await fetch(`${app.baseUrl}/v1/billing/polar/webhook`, {
      method: "POST",
      headers: forged.headers,
      body: forged.body,
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("invalid_signature");

    const tampered = signedWebhook(SECRET, "subscription.active", active);
    const altered = await fetch(`${app.baseUrl}/v1/billing/polar/webhook`, {
      method: "POST",
      headers: tampered.headers,
      body: tampered.body.replace(PRO, ENTERPRISE),
    });
    expect(altered.status).toBe(403);

    const stale = await deliver("subscription.active", active, { at: new Date(Date.now() - 10 * 60_000) });
    expect(stale.status).toBe(403);
    const unsigned = await fetch(`${app.baseUrl}/v1/billing/polar/webhook`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: tampered.body,
    });
    expect(unsigned.status).toBe(403);
    expect(unsigned.headers.get("x-request-id")).toBeTruthy();
    expect(await tierOf(alice.userId)).toBe("free");

    const applied = await deliver("subscription.active", active);
    expect(applied).toMatchObject({ status: 202, body: { received: true, outcome: "applied" } });
    expect(await tierOf(alice.userId)).toBe("pro");

    // Polar redelivers the same webhook-id: acknowledged, not applied again (even after a later change).
    await db.query("update users set subscription_tier = 'beta' where id = $1", [alice.userId]);
    const replay = await fetch(`${app.baseUrl}/v1/billing/polar/webhook`, {
      method: "POST",
      headers: applied.hook.headers,
      body: applied.hook.body,
    });
    expect(replay.status).toBe(202);
    expect(((await replay.json()) as { outcome: string }).outcome).toBe("duplicate");
    const [row] = await db.query<{ subscription_tier: string }>("select subscription_tier from users where id = $1", [
      alice.userId,
    ]);
    expect(row!.subscription_tier).toBe("beta");
  });

  test("When subscription events arrive out of order, then the newest state decides the tier each time", async () => {
    const bob = await customer("bob-billing@example.com");
    keys.set(bob.userId, bob.key);
    const t0 = Date.now() - 60_000;
    const created = subscription(bob.userId, { modifiedAt: new Date(t0) });
    const periodEnd = new Date(Date.now() + 20 * DAY);
    const cancelAtEnd = subscription(bob.userId, {
      modifiedAt: new Date(t0 + 10_000),
      cancelAtPeriodEnd: true,
      currentPeriodEnd: periodEnd,
      endsAt: periodEnd,
    });
    const revoked = subscription(bob.userId, {
      modifiedAt: new Date(t0 + 20_000),
      status: "canceled",
      cancelAtPeriodEnd: true,
      endsAt: new Date(t0 + 20_000),
      endedAt: new Date(t0 + 20_000),
    });

    // The cancellation (newer) arrives before the creation (older): the tier stays until the period ends.
    expect((await deliver("subscription.canceled", subscriptionJson(cancelAtEnd))).status).toBe(202);
    expect(await tierOf(bob.userId)).toBe("pro");
    expect((await deliver("subscription.created", subscriptionJson(created))).status).toBe(202);
    const plan = await jsonClient(app.baseUrl).call("GET", "/v1/billing", { token: bob.key });
    expect(plan.body).toMatchObject({ tier: "pro", subscription: { tier: "pro", ends_at: periodEnd.toISOString() } });

    // Revoked: free at once. An older "active" delivered late (a new webhook id) does not bring it back.
    await deliver("subscription.revoked", subscriptionJson(revoked));
    expect(await tierOf(bob.userId)).toBe("free");
    await deliver("subscription.active", subscriptionJson(created));
    expect(await tierOf(bob.userId)).toBe("free");

    // A customer.state_changed snapshot from before the revocation changes nothing either.
    await deliver("customer.state_changed", customerStateJson(bob.userId, [created]), {
      timestamp: new Date(t0 + 5_000),
    });
    expect(await tierOf(bob.userId)).toBe("free");

    // A new enterprise subscription, then a snapshot listing only it: enterprise.
    const upgrade = subscription(bob.userId, {
      id: "sub_bob_enterprise",
      productId: ENTERPRISE,
      modifiedAt: new Date(),
    });
    await deliver("customer.state_changed", customerStateJson(bob.userId, [upgrade]), { timestamp: new Date() });
    expect(await tierOf(bob.userId)).toBe("enterprise");
    // A subscription that ended at its period end, with the revocation webhook never sent, stops counting.
    await db.query("update billing_subscriptions set ends_at = now() - interval '1 second' where id = $1", [
      "sub_bob_enterprise",
    ]);
    await db.query("update users set subscription_tier_until = now() - interval '1 second' where id = $1", [
      bob.userId,
    ]);
    expect(await tierOf(bob.userId)).toBe("free");
  });

  test("When events are for another customer or a type we ignore, then they are acknowledged and change nothing", async () => {
    const stranger = subscription("not-our-user", { modifiedAt: new Date() });
    const res = await deliver("subscription.active", subscriptionJson({ ...stranger, userId: null }));
    expect(res).toMatchObject({ status: 202, body: { outcome: "ignored" } });
    const other = await deliver("checkout.expired", { id: "x" });
    expect(other).toMatchObject({ status: 202, body: { outcome: "ignored" } });
    const broken = await deliver("subscription.updated", { id: "sub_broken" });
    expect(broken.status).toBe(400);
  });

  test("When the monthly spend cap is reached, then 402 insufficient_quota; a Polar upgrade lifts it on the next request on another replica", async () => {
    const carol = await customer("carol-billing@example.com");
    keys.set(carol.userId, carol.key);
    await complete(carol.client());
    await app.services.usage.flush();
    await complete(carol.client());
    await app.services.usage.flush();

    const refused = await complete(carol.client(replica)).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OpenAI.APIError);
    const error = refused as InstanceType<typeof OpenAI.APIError>;
    expect(error.status).toBe(402);
    expect(error.code).toBe("insufficient_quota");
    expect(error.type).toBe("insufficient_quota");
    expect(error.headers?.get("x-should-retry")).toBe("false");
    expect(error.headers?.get("x-request-id")).toBeTruthy();
    expect(error.message).toContain("monthly spend cap");

    // The webhook lands on one replica; the very next request on the other is served with pro's limits.
    await db.query("update users set subscription_tier = null where id = $1", [carol.userId]);
    const hook = await deliver(
      "subscription.active",
      subscriptionJson(subscription(carol.userId, { modifiedAt: new Date() })),
    );
    expect(hook.status).toBe(202);
    const { response } = await complete(carol.client(replica));
    expect(response.headers.get("x-ratelimit-limit-requests")).toBe("60");
  });

  test("When the authenticator caches lookups, then a tier change still reaches every replica's next request", async () => {
    const cached = { ...env(), AUTH_CACHE_TTL_SECONDS: "300" };
    const a = await startTestApp({ db, config: testConfig(cached, CONFIG_DIR) });
    const b = await startTestApp({ db, config: testConfig(cached, CONFIG_DIR) });
    try {
      const dave = await customer("dave-billing@example.com");
      const before = await complete(dave.client(b));
      expect(before.response.headers.get("x-ratelimit-limit-requests")).toBe("10");
      const hook = signedWebhook(
        SECRET,
        "subscription.active",
        subscriptionJson(subscription(dave.userId, { modifiedAt: new Date() })),
      );
      const res = await fetch(`${a.baseUrl}/v1/billing/polar/webhook`, {
        method: "POST",
        headers: hook.headers,
        body: hook.body,
      });
      expect(res.status).toBe(202);
      const after = await complete(dave.client(b));
      expect(after.response.headers.get("x-ratelimit-limit-requests")).toBe("60");
    } finally {
      await a.close();
      await b.close();
    }
  });

  test("When a prepaid tier's balance is used up, then 402; a positive balance serves, and cost is deducted", async () => {
    const erin = await customer("erin-billing@example.com", "prepaid");
    const refused = await complete(erin.client()).catch((error: unknown) => error);
    expect((refused as InstanceType<typeof OpenAI.APIError>).status).toBe(402);
    expect((refused as InstanceType<typeof OpenAI.APIError>).message).toContain("prepaid balance");
    await db.query("update users set current_balance_usd = 1 where id = $1", [erin.userId]);
    await complete(erin.client());
    await app.services.usage.flush();
    const plan = await jsonClient(app.baseUrl).call("GET", "/v1/billing", { token: erin.key });
    expect(plan.body.balance_usd).toBeCloseTo(1 - 0.00009375, 8);
    expect(plan.body.prepaid).toBe(true);
  });

  test("When completions succeed, then each becomes exactly one Polar event with the _llm and _cost metadata", async () => {
    const frank = await customer("frank-billing@example.com", "pro");
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push((await complete(frank.client(), `q${i}`)).response.headers.get("x-request-id")!);
    const stream = await frank.client().chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "stream please" }],
      stream: true,
    });
    for await (const _ of stream) {
      /* drain */
    }
    await app.services.usage.flush();
    await app.services.billing.outbox!.drain();

    const mine = polar.events.filter((e) => e.external_customer_id === frank.userId);
    expect(mine).toHaveLength(4);
    expect(mine.map((e) => e.external_id)).toEqual(expect.arrayContaining(ids));
    expect(mine[0]).toMatchObject({
      name: "llm.usage",
      metadata: {
        _llm: {
          vendor: "openai",
          model: "gpt-4o",
          input_tokens: 11,
          cached_input_tokens: 3,
          output_tokens: 7,
          total_tokens: 18,
        },
        _cost: { amount: 0.009375, currency: "usd" },
      },
    });
    expect(await app.services.billing.outbox!.pending()).toBe(0);
    // The Prometheus counter saw them too; no key or secret is in anything Polar received.
    expect(JSON.stringify(polar.received)).not.toMatch(/sk-proj-|sk-perp-/);
  });

  test("When Polar is down for a while, then events wait in the outbox and arrive exactly once per request when it returns", async () => {
    const gina = await customer("gina-billing@example.com", "pro");
    await polar.stop();
    const ids: string[] = [];
    try {
      for (let i = 0; i < 3; i++)
        ids.push((await complete(gina.client(), `down ${i}`)).response.headers.get("x-request-id")!);
      await app.services.usage.flush();
      await app.services.billing.outbox!.drain();
      await replica.services.billing.outbox!.drain();
      const [waiting] = await db.query<{ n: number; errors: number }>(
        "select count(*)::int as n, count(last_error)::int as errors from billing_outbox where user_id = $1",
        [gina.userId],
      );
      expect(waiting).toEqual({ n: 3, errors: 3 });
    } finally {
      await polar.restart();
    }
    // The first retry is due after 2 s of backoff (moved past, not waited for); both replicas drain concurrently.
    clock.advance(2_200);
    await Promise.all([app.services.billing.outbox!.drain(), replica.services.billing.outbox!.drain()]);
    const delivered = polar.received.filter((e) => e.external_customer_id === gina.userId).map((e) => e.external_id);
    expect(delivered.sort()).toEqual([...ids].sort());
    expect(await app.services.billing.outbox!.pending()).toBe(0);
  });

  test("When a user asks for checkout, portal, plan and usage, then they get their own, linked by external id", async () => {
    const hank = await customer("hank-billing@example.com");
    const other = await customer("ivy-billing@example.com");
    const api = jsonClient(app.baseUrl);
    const checkout = await api.call("GET", `/v1/billing/checkout?product=${PRO}`, { token: hank.key });
    expect(checkout.status).toBe(200);
    expect(checkout.body).toMatchObject({ object: "billing.checkout", url: expect.stringContaining(polar.url) });
    const unknown = await api.call("GET", "/v1/billing/checkout?product=prod_nope", { token: hank.key });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error).toMatchObject({ param: "product", code: "invalid_value" });
    const missing = await api.call("GET", "/v1/billing/checkout", { token: hank.key });
    expect(missing.status).toBe(400);

    const portal = await api.call("GET", "/v1/billing/portal", { token: hank.key });
    expect(portal.status).toBe(200);
    expect(portal.body.url).toContain("customer_session_token=");
    expect(polar.customers.get(hank.userId)).toMatchObject({
      external_id: hank.userId,
      email: "hank-billing@example.com",
    });
    expect((await api.call("GET", "/v1/billing/portal", { token: hank.key })).status).toBe(200);

    const plan = await api.call("GET", "/v1/billing", { token: hank.key });
    expect(plan.body).toMatchObject({
      object: "billing",
      tier: "free",
      subscription: null,
      checkout_enabled: true,
      products: expect.arrayContaining([
        { id: PRO, tier: "pro" },
        { id: ENTERPRISE, tier: "enterprise" },
      ]),
    });

    await complete(hank.client());
    await complete(other.client());
    await app.services.usage.flush();
    const today = new Date().toISOString().slice(0, 10);
    const usage = await api.call("GET", `/v1/usage?start=${today}&end=${today}`, { token: hank.key });
    expect(usage.status).toBe(200);
    expect(usage.body).toMatchObject({
      object: "usage_report",
      data: [{ date: today, model: "gpt-4o", requests: 1, prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 }],
      totals: { requests: 1, total_tokens: 18, cost_usd: 0.00009375 },
    });
    const bad = await api.call("GET", "/v1/usage?start=2026-13-01", { token: hank.key });
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe("start");
    const reversed = await api.call("GET", "/v1/usage?start=2026-11-02&end=2026-11-01", { token: hank.key });
    expect(reversed.status).toBe(400);
  });

  test("When Polar is not configured, then billing routes say so, webhooks are off and no events are queued", async () => {
    const plain = await startTestApp({
      db,
      config: testConfig(
        {
          DATABASE_URL: database.url,
          OPENAI_BASE_URL: upstream.url,
        },
        CONFIG_DIR,
      ),
    });
    try {
      const user = await createUser(db, "jack-billing@example.com", "pro");
      const key = (await createApiKey(db, user.id)).key;
      await plain.services.providerKeys.add(user.id, "openai", `sk-proj-${randomBytes(12).toString("hex")}`);
      const api = jsonClient(plain.baseUrl);
      const checkout = await api.call("GET", `/v1/billing/checkout?product=${PRO}`, { token: key });
      expect(checkout.status).toBe(404);
      expect(checkout.body.error.code).toBe("billing_not_enabled");
      const hook = signedWebhook(
        SECRET,
        "subscription.active",
        subscriptionJson(subscription(user.id, { modifiedAt: new Date() })),
      );
      const res = await fetch(`${plain.baseUrl}/v1/billing/polar/webhook`, {
        method: "POST",
        headers: hook.headers,
        body: hook.body,
      });
      expect(res.status).toBe(404);
      const client = new OpenAI({ apiKey: key, baseURL: `${plain.baseUrl}/v1`, maxRetries: 0 });
      await complete(client);
      await plain.services.usage.flush();
      expect(await db.query("select 1 from billing_outbox where user_id = $1", [user.id])).toEqual([]);
      expect((await api.call("GET", "/v1/billing", { token: key })).body.checkout_enabled).toBe(false);
    } finally {
      await plain.close();
    }
  });
});
