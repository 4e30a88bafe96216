import type { Tiers } from "../config";
import type { Database, SqlExecutor } from "../db";
import type { Logger } from "../log";

/** What a delivery did: applied, ignored (an event or customer we do not act on) or a redelivery already applied. */
export type WebhookOutcome = "applied" | "ignored" | "duplicate";

/** A delivery whose signature or timestamp does not check out (answered 403). */
export class WebhookRejectedError extends Error {}
/** A signed delivery of an event we act on whose body does not parse (answered 400, so Polar retries and shows it). */
export class WebhookMalformedError extends Error {}

/** A delivery whose signature checked out: its id, type and (for the types we use) the parsed event. */
export interface VerifiedWebhook {
  webhookId: string;
  type: string;
  parsed?: ParsedEvent;
}

const HANDLED = new Set([
  "subscription.created",
  "subscription.active",
  "subscription.updated",
  "subscription.canceled",
  "subscription.uncanceled",
  "subscription.past_due",
  "subscription.revoked",
  "customer.state_changed",
]);

/** Statuses under which a subscription still grants its tier (past_due: while Polar retries the payment). */
const ENTITLED = new Set(["active", "trialing", "past_due"]);

/** The part of a subscription we keep: its own modification time orders the states we are told about. */
interface SubscriptionState {
  id: string;
  productId: string;
  status: string;
  cancelAtPeriodEnd: boolean;
  currentPeriodEnd: Date | null;
  endsAt: Date | null;
  endedAt: Date | null;
  modifiedAt: Date;
}

export interface PolarWebhooksOptions {
  db: Database;
  tiers: Tiers;
  secret: string;
  logger: Logger;
  /** Called after commit for each user whose tier may have changed. */
  onUserChanged: (userId: string) => Promise<void>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Applies Polar's subscription webhooks to users' tiers. Deliveries are verified (Standard Webhooks, through the
 * SDK), applied at most once per webhook-id, and in any order: each subscription keeps its newest known state,
 * and the user's tier is recomputed from all of them.
 */
export class PolarWebhooks {
  private readonly sdk: typeof import("@polar-sh/sdk/webhooks");

  constructor(private readonly options: PolarWebhooksOptions) {
    // The SDK's webhook module (~290 modules, 0.3 s to load) only where webhooks are configured, loaded at start.
    this.sdk = require("@polar-sh/sdk/webhooks") as typeof import("@polar-sh/sdk/webhooks");
  }

  /** Checks the Standard Webhooks signature over the raw bytes; throws WebhookRejectedError when it fails. */
  verify(body: Buffer, headers: Record<string, string>): VerifiedWebhook {
    return { webhookId: headers["webhook-id"]!, ...this.verifiedEvent(body, headers) };
  }

  /** Applies a verified delivery once per webhook-id. */
  async apply(event: VerifiedWebhook): Promise<WebhookOutcome> {
    const { webhookId } = event;
    const { db, logger } = this.options;
    const result = await db.transaction(async (tx) => {
      const first = await tx.query(
        `insert into billing_webhook_events (webhook_id, type, outcome) values ($1, $2, 'ignored')
         on conflict (webhook_id) do nothing returning 1`,
        [webhookId, event.type],
      );
      if (first.length === 0) return { outcome: "duplicate" as const };
      const userId = event.parsed ? await this.applyEvent(tx, event.parsed) : undefined;
      if (userId) {
        await tx.query("update billing_webhook_events set outcome = 'applied' where webhook_id = $1", [webhookId]);
      }
      return { outcome: userId ? ("applied" as const) : ("ignored" as const), userId };
    });
    if ("userId" in result && result.userId) await this.options.onUserChanged(result.userId);
    logger.info("polar webhook", { webhook_id: webhookId, type: event.type, outcome: result.outcome });
    return result.outcome;
  }

  private verifiedEvent(body: Buffer, headers: Record<string, string>): { type: string; parsed?: ParsedEvent } {
    try {
      const parsed = this.sdk.validateEvent(body, headers, this.options.secret) as ParsedEvent;
      return { type: parsed.type, parsed: HANDLED.has(parsed.type) ? parsed : undefined };
    } catch (error) {
      if (error instanceof this.sdk.WebhookVerificationError) throw new WebhookRejectedError(error.message);
      // Signed, but the SDK does not know or cannot read it: fine for a type we ignore, an error for one we use.
      const type = typeOf(body);
      if (HANDLED.has(type)) throw new WebhookMalformedError(`The ${type} payload does not parse.`);
      return { type };
    }
  }

  /** Returns the user whose subscriptions changed, or undefined when the event is not about one of our users. */
  private async applyEvent(tx: SqlExecutor, event: ParsedEvent): Promise<string | undefined> {
    const userId = event.data.customer?.externalId ?? event.data.externalId ?? null;
    if (!userId || !UUID.test(userId)) {
      this.options.logger.warn("polar webhook for a customer without our user id", { type: event.type });
      return undefined;
    }
    const user = await tx.query("select 1 from users where id = $1 for update", [userId]);
    if (user.length === 0) {
      this.options.logger.warn("polar webhook for an unknown user", { type: event.type, user_id: userId });
      return undefined;
    }
    if (event.type === "customer.state_changed") {
      await this.applyCustomerState(tx, userId, event.data.activeSubscriptions ?? [], event.timestamp);
    } else {
      await storeSubscription(tx, userId, subscriptionState(event.data as SubscriptionPayload));
    }
    await this.recomputeTier(tx, userId);
    return userId;
  }

  /**
   * A snapshot of the customer's active subscriptions at `at`: each listed one is stored (newest state wins), and
   * any other we hold that was last changed before the snapshot is no longer active.
   */
  private async applyCustomerState(tx: SqlExecutor, userId: string, active: SubscriptionPayload[], at: Date) {
    for (const subscription of active) await storeSubscription(tx, userId, subscriptionState(subscription));
    await tx.query(
      `update billing_subscriptions set status = 'inactive', ended_at = coalesce(ended_at, $3),
              polar_modified_at = $3, updated_at = now()
        where user_id = $1 and not (id = any($2::text[])) and polar_modified_at < $3 and status <> 'inactive'`,
      [userId, active.map((s) => s.id), at],
    );
  }

  private async recomputeTier(tx: SqlExecutor, userId: string): Promise<void> {
    const rows = await tx.query<{ product_id: string; status: string; ends_at: Date | null; ended_at: Date | null }>(
      "select product_id, status, ends_at, ended_at from billing_subscriptions where user_id = $1",
      [userId],
    );
    const now = Date.now();
    let best: { tier: string; rank: number; until: Date | null } | undefined;
    for (const s of rows) {
      const tier = this.options.tiers.byPolarProduct.get(s.product_id);
      if (!tier) continue;
      if (!ENTITLED.has(s.status) || (s.ended_at && s.ended_at.getTime() <= now)) continue;
      if (s.ends_at && s.ends_at.getTime() <= now) continue;
      if (!best || tier.rank > best.rank) best = { tier: tier.name, rank: tier.rank, until: s.ends_at };
      else if (tier.rank === best.rank) best.until = later(best.until, s.ends_at);
    }
    await tx.query(
      "update users set subscription_tier = $2, subscription_tier_until = $3, updated_at = now() where id = $1",
      [userId, best?.tier ?? null, best?.until ?? null],
    );
  }
}

/** Upserts a subscription unless we already hold a newer state of it. */
async function storeSubscription(tx: SqlExecutor, userId: string, s: SubscriptionState): Promise<void> {
  await tx.query(
    `insert into billing_subscriptions (id, user_id, product_id, status, cancel_at_period_end, current_period_end,
                                        ends_at, ended_at, polar_modified_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     on conflict (id) do update set product_id = excluded.product_id, status = excluded.status,
       cancel_at_period_end = excluded.cancel_at_period_end, current_period_end = excluded.current_period_end,
       ends_at = excluded.ends_at, ended_at = excluded.ended_at, polar_modified_at = excluded.polar_modified_at,
       updated_at = now()
     where billing_subscriptions.polar_modified_at <= excluded.polar_modified_at
       and billing_subscriptions.user_id = excluded.user_id`,
    [s.id, userId, s.productId, s.status, s.cancelAtPeriodEnd, s.currentPeriodEnd, s.endsAt, s.endedAt, s.modifiedAt],
  );
}

function subscriptionState(s: SubscriptionPayload): SubscriptionState {
  return {
    id: s.id,
    productId: s.productId,
    status: s.status,
    cancelAtPeriodEnd: s.cancelAtPeriodEnd,
    currentPeriodEnd: s.currentPeriodEnd ?? null,
    endsAt: s.endsAt ?? null,
    endedAt: s.endedAt ?? null,
    modifiedAt: s.modifiedAt ?? s.createdAt,
  };
}

const later = (a: Date | null, b: Date | null) => (a === null || b === null ? null : a > b ? a : b);

function typeOf(body: Buffer): string {
  try {
    const type = (JSON.parse(body.toString("utf8")) as { type?: unknown }).type;
    return typeof type === "string" ? type : "unknown";
  } catch {
    return "unknown";
  }
}

/** The fields we read from the SDK's parsed payloads (subscription events and customer.state_changed). */
interface SubscriptionPayload {
  id: string;
  productId: string;
  status: string;
  cancelAtPeriodEnd: boolean;
  currentPeriodEnd?: Date | null;
  endsAt?: Date | null;
  endedAt?: Date | null;
  createdAt: Date;
  modifiedAt: Date | null;
  customer?: { externalId?: string | null };
}

interface ParsedEvent {
  type: string;
  timestamp: Date;
  data: SubscriptionPayload & { externalId?: string | null; activeSubscriptions?: SubscriptionPayload[] };
}
