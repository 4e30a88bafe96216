import type { Polar } from "@polar-sh/sdk";
import type { SDKOptions } from "@polar-sh/sdk/lib/config.js";
import { PolarError } from "@polar-sh/sdk/models/errors/polarerror.js";

export interface PolarSettings {
  apiKey: string;
  organizationId?: string;
  /** "production", "sandbox" or a base URL. */
  server: string;
  successUrl?: string;
}

/** One completed request as a Polar event (the `_llm` and `_cost` metadata keys are Polar's reserved ones). */
export interface UsageEvent {
  requestId: string;
  userId: string;
  provider: string | null;
  model: string;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  costUsd: number;
  createdAt: Date;
}

export interface BillingCustomer {
  id: string;
  email: string | null;
}

/** The meters `billing meters setup` creates: what the Polar dashboard shows and metered prices attach to. */
export const RECOMMENDED_METERS = [
  { name: "LLM tokens", property: "_llm.total_tokens" },
  { name: "LLM cost (USD cents)", property: "_cost.amount" },
] as const;

/**
 * The product's calls to Polar, through the official SDK. A Perpetual user is the Polar customer whose
 * external_id is the user id: checkout creates it, the portal creates it when missing.
 */
export class PolarGateway {
  private readonly polar: Polar;

  constructor(private readonly settings: PolarSettings) {
    const { server } = settings;
    const where: SDKOptions =
      server === "production" || server === "sandbox" ? { server } : { serverURL: server.replace(/\/+$/, "") };
    // Retries belong to the callers (the usage outbox backs off; an API caller can retry): none in the SDK.
    // The SDK (about a thousand modules, ~70 MB resident) is loaded only by a deployment that bills through Polar.
    const sdk = require("@polar-sh/sdk") as typeof import("@polar-sh/sdk");
    this.polar = new sdk.Polar({ accessToken: settings.apiKey, ...where, timeoutMs: 15_000 });
  }

  async checkout(customer: BillingCustomer, productId: string): Promise<{ id: string; url: string }> {
    const checkout = await this.polar.checkouts.create({
      products: [productId],
      externalCustomerId: customer.id,
      customerEmail: customer.email,
      successUrl: this.settings.successUrl,
    });
    return { id: checkout.id, url: checkout.url };
  }

  /** A customer-portal session (manage subscription, invoices, payment method), creating the customer if new. */
  async portal(customer: BillingCustomer): Promise<{ url: string; expiresAt: Date }> {
    const open = () =>
      this.polar.customerSessions.create({ externalCustomerId: customer.id, returnUrl: this.settings.successUrl });
    let session: Awaited<ReturnType<typeof open>>;
    try {
      session = await open();
    } catch (error) {
      if (!(error instanceof PolarError && (error.statusCode === 404 || error.statusCode === 422))) throw error;
      if (!customer.email) throw new MissingEmailError();
      await this.polar.customers.create({
        externalId: customer.id,
        email: customer.email,
        organizationId: this.settings.organizationId,
      });
      session = await open();
    }
    return { url: session.customerPortalUrl, expiresAt: session.expiresAt };
  }

  /** Sends events; Polar skips an external_id it has already seen, so a resend never bills twice. */
  async ingest(eventName: string, events: UsageEvent[]): Promise<{ inserted: number; duplicates: number }> {
    return this.polar.events.ingest({
      events: events.map((e) => ({
        name: eventName,
        externalCustomerId: e.userId,
        externalId: e.requestId,
        timestamp: e.createdAt,
        organizationId: this.settings.organizationId,
        metadata: {
          _llm: {
            vendor: e.provider ?? "unknown",
            model: e.model,
            inputTokens: e.promptTokens,
            cachedInputTokens: e.cachedTokens,
            outputTokens: e.completionTokens,
            totalTokens: e.promptTokens + e.completionTokens,
          },
          _cost: { amount: Math.round(e.costUsd * 100 * 1e6) / 1e6, currency: "usd" },
        },
      })),
    });
  }

  /** Creates the recommended meters that do not exist yet (matched by name); returns what it did for each. */
  async setUpMeters(eventName: string): Promise<Array<{ name: string; created: boolean; id: string }>> {
    const existing = new Map<string, string>();
    for await (const page of await this.polar.meters.list({
      organizationId: this.settings.organizationId,
      isArchived: false,
      limit: 100,
    })) {
      for (const meter of page.result.items) existing.set(meter.name, meter.id);
    }
    const results: Array<{ name: string; created: boolean; id: string }> = [];
    for (const meter of RECOMMENDED_METERS) {
      const id = existing.get(meter.name);
      if (id) {
        results.push({ name: meter.name, created: false, id });
        continue;
      }
      const created = await this.polar.meters.create({
        name: meter.name,
        organizationId: this.settings.organizationId,
        filter: { conjunction: "and", clauses: [{ property: "name", operator: "eq", value: eventName }] },
        aggregation: { func: "sum", property: meter.property },
      });
      results.push({ name: meter.name, created: true, id: created.id });
    }
    return results;
  }
}

/** Polar needs an email to create a customer; an account made from an API key alone may have none. */
export class MissingEmailError extends Error {
  constructor() {
    super("This account has no email address; Polar needs one to create the customer.");
    this.name = "MissingEmailError";
  }
}
