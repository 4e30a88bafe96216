import type { Clock } from "../clock";
import type { Config } from "../config";
import type { Database } from "../db";
import type { Logger } from "../log";
import { BillingOutbox } from "./outbox";
import { PolarGateway } from "./polar";
import { PolarWebhooks } from "./webhooks";

export { BillingOutbox } from "./outbox";
export { MissingEmailError, PolarGateway, RECOMMENDED_METERS, type UsageEvent } from "./polar";
export { assertWithinSpend } from "./spend";
export {
  PolarWebhooks,
  type VerifiedWebhook,
  WebhookMalformedError,
  type WebhookOutcome,
  WebhookRejectedError,
} from "./webhooks";

/** Polar billing: each part exists only when configured (API key: checkout, portal, usage events; secret: webhooks). */
export interface Billing {
  polar?: PolarGateway;
  outbox?: BillingOutbox;
  webhooks?: PolarWebhooks;
}

export function createBilling(
  config: Config,
  db: Database,
  logger: Logger,
  onUserChanged: (userId: string) => Promise<void>,
  { onSent, clock }: { onSent?: (events: number) => void; clock: Clock },
): Billing {
  const { apiKey, webhookSecret } = config.polar;
  const polar = apiKey ? new PolarGateway({ ...config.polar, apiKey }) : undefined;
  const outbox = polar
    ? new BillingOutbox({ db, polar, eventName: config.polar.eventName, logger, onSent, clock })
    : undefined;
  const webhooks = webhookSecret
    ? new PolarWebhooks({ db, tiers: config.tiers, secret: webhookSecret, logger, onUserChanged })
    : undefined;
  if (polar && !webhooks)
    logger.warn("POLAR_API_KEY is set without POLAR_WEBHOOK_SECRET: subscriptions will not set tiers");
  return { polar, outbox, webhooks };
}
