import { z } from "zod";
import { type Billing, MissingEmailError } from "../../billing";
import type { Clock } from "../../clock";
import type { Tiers } from "../../config";
import type { Database } from "../../db";
import { ApiError, InvalidRequestError, NotFoundError, UpstreamFailedError } from "../../errors";
import { findStanding } from "../../identity";
import type { RateLimiter, Standing } from "../../limits";
import type { Logger } from "../../log";
import { usageByDayAndModel } from "../../usage/report";
import { ApiRouter, json } from "../api-router";
import { billingDisabled, principalOf, verifiedWebhookOf } from "../guards";

export const WEBHOOK_PATH = "/billing/polar/webhook";

const isoDate = z.iso.date({ message: "must be a date as YYYY-MM-DD" });
// start <= end is checked once the defaults are filled in.
const usageQuery = z.strictObject({
  start: isoDate.optional().meta({ description: "First day (UTC), inclusive. Default: the 1st of this month." }),
  end: isoDate.optional().meta({ description: "Last day (UTC), inclusive. Default: today." }),
});
const checkoutQuery = z.strictObject({
  product: z.string().min(1).max(100).meta({ description: "A Polar product id listed in GET /v1/billing." }),
});

const tokens = z.int().nonnegative();
const UsageLineView = z.strictObject({
  date: z.iso.date(),
  model: z.string(),
  requests: z.int().nonnegative(),
  prompt_tokens: tokens,
  cached_tokens: tokens,
  completion_tokens: tokens,
  total_tokens: tokens,
  cost_usd: z.number(),
});
const UsageReport = z
  .strictObject({
    object: z.literal("usage_report"),
    start: z.iso.date(),
    end: z.iso.date(),
    data: z.array(UsageLineView).meta({ description: "One line per UTC day and model, oldest first." }),
    totals: UsageLineView.omit({ date: true, model: true }),
  })
  .meta({ id: "UsageReport" });
const BillingView = z
  .strictObject({
    object: z.literal("billing"),
    tier: z.string().meta({ description: "The tier in force: a paid subscription's, else the account's base tier." }),
    subscription: z
      .strictObject({
        tier: z.string(),
        ends_at: z.iso.datetime().nullable().meta({ description: "Set when cancelled at the end of the period." }),
      })
      .nullable(),
    month_spend_usd: z.number().meta({ description: "Cost this calendar month (UTC)." }),
    monthly_spend_cap_usd: z.number().nullable(),
    balance_usd: z.number().meta({ description: "Prepaid balance (cost is deducted as it is recorded)." }),
    prepaid: z.boolean(),
    checkout_enabled: z.boolean(),
    products: z.array(z.strictObject({ id: z.string(), tier: z.string() })),
  })
  .meta({ id: "Billing" });
const CheckoutView = z
  .strictObject({ object: z.literal("billing.checkout"), id: z.string(), url: z.url() })
  .meta({ id: "BillingCheckout" });
const PortalView = z
  .strictObject({ object: z.literal("billing.portal_session"), url: z.url(), expires_at: z.iso.datetime() })
  .meta({ id: "BillingPortalSession" });
const WebhookReceipt = z
  .strictObject({ received: z.literal(true), outcome: z.enum(["applied", "ignored", "duplicate"]) })
  .meta({ id: "PolarWebhookReceipt" });
const WebhookBody = z
  .looseObject({ type: z.string(), timestamp: z.iso.datetime({ offset: true }), data: z.looseObject({}) })
  .meta({ id: "PolarWebhookEvent", description: "A Polar webhook event, verified against its raw bytes." });

/** Polar answered with an error or could not be reached: the caller may try again. */
async function fromPolar<T>(logger: Logger, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof ApiError) throw error;
    if (error instanceof MissingEmailError) throw new InvalidRequestError(error.message, { code: "email_required" });
    logger.warn("polar request failed", { error });
    throw new UpstreamFailedError(502, "The billing provider could not be reached; try again.", {
      code: "billing_error",
    });
  }
}

const LimitView = z.strictObject({
  limit: z.int().nullable().meta({ description: "null: no such limit on this tier" }),
  used: z.int().nonnegative(),
  remaining: z.int().nonnegative().nullable(),
  resets_in_seconds: z.int().positive(),
});
const LimitsView = z
  .strictObject({
    object: z.literal("rate_limits"),
    tier: z.string(),
    requests_per_minute: LimitView,
    requests_per_day: LimitView,
    tokens_per_minute: LimitView,
    tokens_per_day: LimitView,
    api_key: z
      .strictObject({ id: z.string(), requests_per_minute: LimitView, requests_per_day: LimitView })
      .nullable()
      .meta({ description: "The calling key's own limits, when it was created with some." }),
  })
  .meta({ id: "RateLimits" });

function limitsJson(tier: string, { limits, usage, minuteResetMs, dayResetMs }: Standing) {
  const view = (limit: number | null | undefined, used: number, resetMs: number) => ({
    limit: limit ?? null,
    used,
    remaining: limit === null || limit === undefined ? null : Math.max(0, limit - used),
    resets_in_seconds: Math.max(1, Math.ceil(resetMs / 1000)),
  });
  return {
    object: "rate_limits",
    tier,
    requests_per_minute: view(limits.requestsPerMinute, usage.requestsMinute, minuteResetMs),
    requests_per_day: view(limits.requestsPerDay, usage.requestsDay, dayResetMs),
    tokens_per_minute: view(limits.tokensPerMinute, usage.tokensMinute, minuteResetMs),
    tokens_per_day: view(limits.tokensPerDay, usage.tokensDay, dayResetMs),
    api_key: limits.key
      ? {
          id: limits.key.id,
          requests_per_minute: view(limits.key.requestsPerMinute, usage.keyRequestsMinute, minuteResetMs),
          requests_per_day: view(limits.key.requestsPerDay, usage.keyRequestsDay, dayResetMs),
        }
      : null,
  };
}

export interface BillingRoutesDeps {
  db: Database;
  tiers: Tiers;
  billing: Billing;
  limiter: RateLimiter;
  logger: Logger;
  /** Today, for the usage report's defaults. */
  clock: Clock;
}

/** The caller's plan, usage and Polar checkout/portal. */
export function billingRoutes({ db, tiers, billing, limiter, logger, clock }: BillingRoutesDeps): ApiRouter {
  const api = new ApiRouter("Billing");

  api.route(
    {
      method: "get",
      path: "/me/limits",
      summary: "The caller's rate limits and what is left of them now (reading them counts nothing)",
      access: "api_key",
      responses: { 200: { description: "Limits, use and resets.", content: json(LimitsView) } },
    },
    async (_input, res) => {
      const principal = principalOf(res);
      res.json(limitsJson(principal.tier, await limiter.standing(principal)));
    },
  );
  const products = [...tiers.byPolarProduct].map(([id, tier]) => ({ id, tier: tier.name }));

  api.route(
    {
      method: "get",
      path: "/usage",
      summary: "The caller's usage per day and model: requests, tokens and cost",
      access: "api_key",
      query: usageQuery,
      responses: { 200: { description: "The report.", content: json(UsageReport) } },
    },
    async ({ query }, res) => {
      const { userId } = principalOf(res);
      const today = new Date(clock()).toISOString().slice(0, 10);
      const end = query.end ?? today;
      const start = query.start ?? `${end.slice(0, 7)}-01`;
      if (start > end)
        throw new InvalidRequestError("Invalid 'start': must not be after end", {
          code: "invalid_value",
          param: "start",
        });
      const lines = await db.asUser(userId, (tx) => usageByDayAndModel(tx, userId, start, end));
      const totals = { requests: 0, prompt_tokens: 0, cached_tokens: 0, completion_tokens: 0, total_tokens: 0 };
      let cost = 0;
      const data = lines.map((l) => {
        totals.requests += l.requests;
        totals.prompt_tokens += l.promptTokens;
        totals.cached_tokens += l.cachedTokens;
        totals.completion_tokens += l.completionTokens;
        totals.total_tokens += l.totalTokens;
        cost += l.costUsd;
        return {
          date: l.date,
          model: l.model,
          requests: l.requests,
          prompt_tokens: l.promptTokens,
          cached_tokens: l.cachedTokens,
          completion_tokens: l.completionTokens,
          total_tokens: l.totalTokens,
          cost_usd: l.costUsd,
        };
      });
      const costUsd = Math.round(cost * 1e8) / 1e8;
      res.json({ object: "usage_report", start, end, data, totals: { ...totals, cost_usd: costUsd } });
    },
  );

  api.route(
    {
      method: "get",
      path: "/billing",
      summary: "The caller's plan: tier in force, subscription, spend this month, cap, balance, products on offer",
      access: "api_key",
      responses: { 200: { description: "The plan.", content: json(BillingView) } },
      errors: [404],
    },
    async (_input, res) => {
      const { userId } = principalOf(res);
      const standing = await db.asUser(userId, (tx) => findStanding(tx, userId));
      if (!standing) throw new NotFoundError("This account no longer exists.", { code: "user_not_found" });
      const tier = tiers.byName.get(standing.tier_in_force) ?? tiers.byName.get(tiers.defaultTier)!;
      const subscribed = standing.subscription_tier !== null && standing.tier_in_force === standing.subscription_tier;
      res.json({
        object: "billing",
        tier: tier.name,
        subscription: subscribed
          ? { tier: standing.subscription_tier, ends_at: standing.tier_until?.toISOString() ?? null }
          : null,
        month_spend_usd: Number(standing.month_spend_usd),
        monthly_spend_cap_usd: tier.monthlySpendCapUsd,
        balance_usd: Number(standing.balance_usd),
        prepaid: tier.prepaid,
        checkout_enabled: billing.polar !== undefined,
        products,
      });
    },
  );

  api.route(
    {
      method: "get",
      path: "/billing/checkout",
      summary: "A Polar checkout URL for a product, linked to the caller",
      description: "The Polar customer is created (or found) with external_id = the caller's user id.",
      access: "api_key",
      query: checkoutQuery,
      responses: { 200: { description: "Send the user to `url`.", content: json(CheckoutView) } },
      errors: [404, 502],
    },
    async ({ query }, res) => {
      if (!billing.polar) throw billingDisabled();
      const { product } = query;
      if (!tiers.byPolarProduct.has(product)) {
        throw new InvalidRequestError(`Invalid 'product': ${product} is not offered here.`, {
          code: "invalid_value",
          param: "product",
        });
      }
      const { userId, email } = principalOf(res);
      const checkout = await fromPolar(logger, billing.polar.checkout({ id: userId, email }, product));
      res.json({ object: "billing.checkout", id: checkout.id, url: checkout.url });
    },
  );

  api.route(
    {
      method: "get",
      path: "/billing/portal",
      summary: "A Polar customer-portal session URL (subscription, invoices, payment method)",
      access: "api_key",
      responses: { 200: { description: "Send the user to `url`.", content: json(PortalView) } },
      errors: [404, 502],
    },
    async (_input, res) => {
      if (!billing.polar) throw billingDisabled();
      const { userId, email } = principalOf(res);
      const session = await fromPolar(logger, billing.polar.portal({ id: userId, email }));
      res.json({ object: "billing.portal_session", url: session.url, expires_at: session.expiresAt.toISOString() });
    },
  );

  return api;
}

/** Polar's webhook: no API key, its guard checks the signature over the raw body instead. */
export function polarWebhookRoutes({ billing }: Pick<BillingRoutesDeps, "billing">): ApiRouter {
  const api = new ApiRouter("Billing");
  api.route(
    {
      method: "post",
      path: WEBHOOK_PATH,
      summary: "Polar webhook endpoint (subscriptions set tiers)",
      description:
        "Verified per Standard Webhooks against the raw body with POLAR_WEBHOOK_SECRET. Each webhook-id is applied " +
        "once; redeliveries and out-of-order deliveries leave the newest subscription state in force.",
      access: "webhook_signature",
      bodyCheckedElsewhere: { schema: WebhookBody, by: "signature" },
      requestHeaders: {
        "webhook-id": "Unique id of the delivery (redeliveries repeat it).",
        "webhook-timestamp": "Unix seconds; more than 5 minutes away from now is refused.",
        "webhook-signature": "v1,<base64 HMAC-SHA256 of id.timestamp.body>",
      },
      responses: { 202: { description: "Verified and processed.", content: json(WebhookReceipt) } },
      errors: [403, 404],
    },
    async (_input, res) => {
      if (!billing.webhooks) throw billingDisabled();
      const outcome = await billing.webhooks.apply(verifiedWebhookOf(res));
      res.status(202).json({ received: true, outcome });
    },
  );

  return api;
}
