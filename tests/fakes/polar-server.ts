import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";
import { z } from "zod";

/**
 * A Polar-compatible API for tests: the endpoints Perpetual calls (event ingestion, customers, customer sessions,
 * checkouts, meters), with Polar's wire format in both directions. Request bodies are checked against strict
 * schemas of Polar's documented request shapes (a violation gets Polar's 422 and is recorded in `violations`, which
 * tests assert empty); responses are full objects the official SDK's validating parsers accept. Events are
 * deduplicated on external_id as Polar does. `stop()` / `restart()` simulate an outage on the same port.
 */

type Json = Record<string, unknown>;

export interface IngestedEvent {
  name: string;
  external_customer_id: string;
  external_id: string;
  timestamp: string;
  organization_id?: string | null;
  metadata: {
    _llm: {
      vendor: string;
      model: string;
      input_tokens: number;
      cached_input_tokens?: number;
      output_tokens: number;
      total_tokens: number;
    };
    _cost: { amount: number | string; currency: string };
  } & Json;
}

export interface FakePolar {
  url: string;
  token: string;
  organizationId: string;
  /** Accepted events in arrival order (one per external_id). */
  events: IngestedEvent[];
  /** Every event received, duplicates included. */
  received: IngestedEvent[];
  customers: Map<string, Json>;
  meters: Json[];
  violations: string[];
  requests: Array<{ method: string; path: string }>;
  stop(): Promise<void>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

const llm = z.strictObject({
  vendor: z.string().min(1),
  model: z.string().min(1),
  prompt: z.string().nullable().optional(),
  response: z.string().nullable().optional(),
  input_tokens: z.int().nonnegative(),
  cached_input_tokens: z.int().nonnegative().optional(),
  output_tokens: z.int().nonnegative(),
  total_tokens: z.int().nonnegative(),
});
const cost = z.strictObject({ amount: z.union([z.number(), z.string()]), currency: z.literal("usd") });
const metadataValue = z.union([z.string().max(500), z.number(), z.boolean()]);
const eventSchema = z.strictObject({
  name: z.string().min(1),
  external_customer_id: z.string().min(1),
  external_id: z.string().min(1).optional(),
  external_member_id: z.string().nullable().optional(),
  parent_id: z.string().nullable().optional(),
  timestamp: z.iso.datetime({ offset: true }).optional(),
  organization_id: z.string().nullable().optional(),
  metadata: z
    .record(z.string().max(40), z.union([llm, cost, metadataValue]))
    .refine((m) => m._llm === undefined || llm.safeParse(m._llm).success, "_llm must be LLM metadata")
    .refine((m) => m._cost === undefined || cost.safeParse(m._cost).success, "_cost must be cost metadata")
    .optional(),
});
const REQUESTS: Record<string, z.ZodType> = {
  "POST /v1/events/ingest": z.strictObject({ events: z.array(eventSchema).min(1).max(1000) }),
  "POST /v1/customers/": z.strictObject({
    external_id: z.string().min(1),
    email: z.email(),
    type: z.enum(["individual", "team"]).optional(),
    name: z.string().nullable().optional(),
    organization_id: z.string().nullable().optional(),
  }),
  "POST /v1/customer-sessions/": z.strictObject({
    external_customer_id: z.string().min(1),
    return_url: z.url().nullable().optional(),
  }),
  "POST /v1/checkouts/": z.strictObject({
    products: z.array(z.string().min(1)).min(1),
    external_customer_id: z.string().min(1).nullable().optional(),
    customer_email: z.email().nullable().optional(),
    success_url: z.url().nullable().optional(),
    allow_discount_codes: z.boolean().optional(),
    require_billing_address: z.boolean().optional(),
    allow_trial: z.boolean().optional(),
    is_business_customer: z.boolean().optional(),
  }),
  "POST /v1/meters/": z.strictObject({
    name: z.string().min(3),
    organization_id: z.string().nullable().optional(),
    filter: z.strictObject({
      conjunction: z.enum(["and", "or"]),
      clauses: z.array(z.strictObject({ property: z.string(), operator: z.string(), value: metadataValue })),
    }),
    aggregation: z.union([
      z.strictObject({ func: z.literal("count") }),
      z.strictObject({ func: z.enum(["sum", "max", "min", "avg"]), property: z.string().min(1) }),
    ]),
  }),
};

const now = () => new Date().toISOString();

function customerJson(organizationId: string, externalId: string, email: string): Json {
  return {
    id: randomUUID(),
    created_at: now(),
    modified_at: null,
    metadata: {},
    external_id: externalId,
    email,
    email_verified: false,
    type: "individual",
    name: null,
    billing_name: null,
    billing_address: null,
    tax_id: null,
    organization_id: organizationId,
    deleted_at: null,
    avatar_url: null,
  };
}

function checkoutJson(organizationId: string, body: Json, baseUrl: string): Json {
  const id = randomUUID();
  const products = body.products as string[];
  return {
    id,
    created_at: now(),
    modified_at: null,
    payment_processor: "stripe",
    status: "open",
    client_secret: `polar_c_${id.replace(/-/g, "")}`,
    url: `${baseUrl}/checkout/polar_c_${id.replace(/-/g, "")}`,
    expires_at: new Date(Date.now() + 3_600_000).toISOString(),
    success_url: (body.success_url as string | undefined) ?? `${baseUrl}/checkout/success`,
    return_url: null,
    embed_origin: null,
    amount: 2000,
    discount_amount: 0,
    net_amount: 2000,
    tax_amount: null,
    tax_behavior: null,
    total_amount: 2000,
    currency: "usd",
    allow_trial: null,
    active_trial_interval: null,
    active_trial_interval_count: null,
    trial_end: null,
    organization_id: organizationId,
    product_id: products[0],
    product_price_id: null,
    discount_id: null,
    allow_discount_codes: true,
    require_billing_address: false,
    is_discount_applicable: false,
    is_free_product_price: false,
    is_payment_required: true,
    is_payment_setup_required: true,
    is_payment_form_required: true,
    customer_id: null,
    is_business_customer: false,
    customer_name: null,
    customer_email: body.customer_email ?? null,
    customer_ip_address: null,
    customer_billing_name: null,
    customer_billing_address: null,
    customer_tax_id: null,
    payment_processor_metadata: {},
    billing_address_fields: {
      country: "required",
      state: "disabled",
      city: "disabled",
      postal_code: "disabled",
      line1: "disabled",
      line2: "disabled",
    },
    trial_interval: null,
    trial_interval_count: null,
    metadata: {},
    external_customer_id: body.external_customer_id ?? null,
    products: [],
    product: null,
    product_price: null,
    prices: null,
    discount: null,
    subscription_id: null,
    attached_custom_fields: null,
    customer_metadata: {},
  };
}

function meterJson(organizationId: string, body: Json): Json {
  return {
    metadata: {},
    created_at: now(),
    modified_at: null,
    id: randomUUID(),
    name: body.name,
    unit: "scalar",
    filter: body.filter,
    aggregation: body.aggregation,
    organization_id: organizationId,
  };
}

export async function startFakePolar(options: { token?: string } = {}): Promise<FakePolar> {
  const token = options.token ?? `polar_oat_${randomUUID().replace(/-/g, "")}`;
  const organizationId = randomUUID();
  const byExternalId = new Map<string, IngestedEvent>();
  const state = {
    events: [] as IngestedEvent[],
    received: [] as IngestedEvent[],
    customers: new Map<string, Json>(),
    meters: [] as Json[],
    violations: [] as string[],
    requests: [] as Array<{ method: string; path: string }>,
  };
  let baseUrl = "";

  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const validationError = (res: ServerResponse, loc: string[], msg: string) =>
    send(res, 422, { detail: [{ loc, msg, type: "value_error", input: null }] });

  const handle = (req: IncomingMessage, res: ServerResponse, raw: string) => {
    const url = new URL(req.url ?? "/", baseUrl);
    const key = `${req.method} ${url.pathname}`;
    state.requests.push({ method: req.method ?? "", path: url.pathname });
    if (req.headers.authorization !== `Bearer ${token}`) {
      return send(res, 401, { error: "Unauthorized", detail: "Invalid or missing access token." });
    }
    let body: Json = {};
    const schema = REQUESTS[key];
    if (schema) {
      try {
        body = JSON.parse(raw) as Json;
      } catch {
        state.violations.push(`${key}: body is not JSON`);
        return validationError(res, ["body"], "Invalid JSON");
      }
      const parsed = schema.safeParse(body);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        state.violations.push(`${key}: ${issue.path.join(".")}: ${issue.message}`);
        return validationError(res, ["body", ...issue.path.map(String)], issue.message);
      }
    }
    switch (key) {
      case "POST /v1/events/ingest": {
        let inserted = 0;
        let duplicates = 0;
        for (const event of body.events as IngestedEvent[]) {
          state.received.push(event);
          if (byExternalId.has(event.external_id)) {
            duplicates++;
            continue;
          }
          byExternalId.set(event.external_id, event);
          state.events.push(event);
          inserted++;
        }
        return send(res, 200, { inserted, duplicates });
      }
      case "POST /v1/customers/": {
        const externalId = body.external_id as string;
        if (state.customers.has(externalId)) {
          return validationError(res, ["body", "external_id"], "A customer with this external ID already exists.");
        }
        const customer = customerJson(organizationId, externalId, body.email as string);
        state.customers.set(externalId, customer);
        return send(res, 201, customer);
      }
      case "POST /v1/customer-sessions/": {
        const customer = state.customers.get(body.external_customer_id as string);
        if (!customer) return validationError(res, ["body", "external_customer_id"], "Customer does not exist.");
        const sessionToken = `polar_cst_${randomUUID().replace(/-/g, "")}`;
        return send(res, 201, {
          created_at: now(),
          modified_at: null,
          id: randomUUID(),
          token: sessionToken,
          expires_at: new Date(Date.now() + 3_600_000).toISOString(),
          return_url: body.return_url ?? null,
          customer_portal_url: `${baseUrl}/portal?customer_session_token=${sessionToken}`,
          customer_id: customer.id,
          customer,
        });
      }
      case "POST /v1/checkouts/":
        return send(res, 201, checkoutJson(organizationId, body, baseUrl));
      case "GET /v1/meters/": {
        const items = state.meters.filter((m) => !url.searchParams.has("organization_id") || m.organization_id);
        return send(res, 200, { items, pagination: { total_count: items.length, max_page: 1 } });
      }
      case "POST /v1/meters/": {
        const meter = meterJson(organizationId, body);
        state.meters.push(meter);
        return send(res, 201, meter);
      }
      default:
        state.violations.push(`${key}: not an endpoint this server knows`);
        return send(res, 404, { error: "ResourceNotFound", detail: "Not found" });
    }
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => handle(req, res, Buffer.concat(chunks).toString("utf8")));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  baseUrl = `http://127.0.0.1:${port}`;
  const closeServer = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });

  return {
    url: baseUrl,
    token,
    organizationId,
    ...state,
    stop: closeServer,
    restart: () => new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve)),
    close: async () => {
      if (server.listening) await closeServer();
    },
  };
}

// --- Webhooks -----------------------------------------------------------------------------------------------------

export interface SubscriptionFields {
  id: string;
  userId: string | null;
  productId: string;
  status: "active" | "trialing" | "past_due" | "canceled" | "incomplete" | "unpaid";
  modifiedAt: Date;
  cancelAtPeriodEnd?: boolean;
  currentPeriodEnd?: Date;
  endsAt?: Date | null;
  endedAt?: Date | null;
  organizationId?: string;
}

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);

/** A subscription as Polar's webhooks carry it (every field the SDK's parser requires). */
export function subscriptionJson(s: SubscriptionFields): Json {
  const organizationId = s.organizationId ?? "00000000-0000-4000-8000-0000000000aa";
  const created = new Date(s.modifiedAt.getTime() - 86_400_000);
  const periodEnd = s.currentPeriodEnd ?? new Date(s.modifiedAt.getTime() + 30 * 86_400_000);
  return {
    created_at: created.toISOString(),
    modified_at: s.modifiedAt.toISOString(),
    id: s.id,
    amount: 2000,
    currency: "usd",
    recurring_interval: "month",
    recurring_interval_count: 1,
    status: s.status,
    current_period_start: created.toISOString(),
    current_period_end: periodEnd.toISOString(),
    current_meter_period_start: null,
    current_meter_period_end: null,
    trial_start: null,
    trial_end: null,
    cancel_at_period_end: s.cancelAtPeriodEnd ?? false,
    canceled_at: s.cancelAtPeriodEnd || s.endedAt ? s.modifiedAt.toISOString() : null,
    started_at: created.toISOString(),
    ends_at: iso(s.endsAt),
    ended_at: iso(s.endedAt),
    pause_at_period_end: false,
    paused_at: null,
    resumes_at: null,
    customer_id: `cus-${s.userId ?? "anonymous"}`,
    product_id: s.productId,
    discount_id: null,
    checkout_id: null,
    customer_cancellation_reason: null,
    customer_cancellation_comment: null,
    metadata: {},
    customer: {
      ...customerJson(organizationId, s.userId ?? "", "buyer@example.com"),
      id: `cus-${s.userId ?? "anonymous"}`,
      external_id: s.userId,
    },
    product: {
      id: s.productId,
      created_at: created.toISOString(),
      modified_at: null,
      trial_interval: null,
      trial_interval_count: null,
      name: `Product ${s.productId}`,
      description: null,
      visibility: "public",
      recurring_interval: "month",
      recurring_interval_count: 1,
      meter_interval: null,
      meter_interval_count: null,
      is_recurring: true,
      is_archived: false,
      organization_id: organizationId,
      metadata: {},
      prices: [],
      benefits: [],
      medias: [],
      attached_custom_fields: [],
    },
    discount: null,
    prices: [],
    meters: [],
    pending_update: null,
  };
}

/** customer.state_changed's data: the customer with the subscriptions active at that moment. */
export function customerStateJson(userId: string, active: SubscriptionFields[]): Json {
  return {
    ...customerJson("00000000-0000-4000-8000-0000000000aa", userId, "buyer@example.com"),
    active_subscriptions: active.map((s) => {
      const full = subscriptionJson(s);
      return {
        id: full.id,
        created_at: full.created_at,
        modified_at: full.modified_at,
        metadata: {},
        status: full.status,
        amount: full.amount,
        currency: full.currency,
        recurring_interval: full.recurring_interval,
        current_period_start: full.current_period_start,
        current_period_end: full.current_period_end,
        trial_start: null,
        trial_end: null,
        cancel_at_period_end: full.cancel_at_period_end,
        canceled_at: full.canceled_at,
        started_at: full.started_at,
        ends_at: full.ends_at,
        product_id: full.product_id,
        discount_id: null,
        meters: [],
      };
    }),
    granted_benefits: [],
    active_meters: [],
  };
}

/** A webhook delivery signed by the standardwebhooks reference implementation, as Polar sends it. */
export function signedWebhook(
  secret: string,
  type: string,
  data: Json,
  options: { id?: string; at?: Date; timestamp?: Date } = {},
): { headers: Record<string, string>; body: string; id: string } {
  const id = options.id ?? `msg_${randomUUID().replace(/-/g, "")}`;
  const signedAt = options.at ?? new Date();
  const body = JSON.stringify({ type, timestamp: (options.timestamp ?? signedAt).toISOString(), data });
  // Polar's secret is used as raw bytes; the reference implementation takes them base64-encoded.
  const signature = new Webhook(Buffer.from(secret, "utf8").toString("base64")).sign(id, signedAt, body);
  return {
    id,
    body,
    headers: {
      "content-type": "application/json",
      "webhook-id": id,
      "webhook-timestamp": String(Math.floor(signedAt.getTime() / 1000)),
      "webhook-signature": signature,
    },
  };
}
