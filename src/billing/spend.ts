import type { Tiers } from "../config";
import { PaymentRequiredError } from "../errors";
import type { Principal } from "../identity";

const insufficientQuota = (message: string) => new PaymentRequiredError(message);

/**
 * Refuses a request when the caller's tier has a monthly spend cap that is reached, or is prepaid and the balance
 * is used up. Reads the spend cached with the credential (no database round trip): a replica sees new spend within
 * AUTH_CACHE_TTL_SECONDS, so a cap can be overshot by what a caller spends in those seconds.
 */
export function assertWithinSpend(principal: Principal, tiers: Tiers): void {
  const tier = tiers.byName.get(principal.tier);
  if (!tier) return;
  const { monthUsd, balanceUsd } = principal.spend;
  if (tier.prepaid && balanceUsd <= 0) {
    throw insufficientQuota(
      "You have no prepaid balance left. Add credit to your account to continue (see GET /v1/billing).",
    );
  }
  const cap = tier.monthlySpendCapUsd;
  if (cap !== null && monthUsd >= cap) {
    throw insufficientQuota(
      `You reached the monthly spend cap of your plan (${tier.name}: $${cap.toFixed(2)}). ` +
        "Upgrade your plan, or wait until the 1st of next month (UTC).",
    );
  }
}
