import type { UserChanges } from "../identity";
import type { Logger } from "../log";

/**
 * Who asks: a user for their own account (every statement then runs as that user, under RLS), or an operator
 * through the admin API or the CLI (as the service; the audit line names the channel).
 */
export type Actor = { user: string } | { operator: "admin_api" | "cli" };

/** One line per change, never a secret: what was done, by whom, to whom. */
export function audit(logger: Logger, actor: Actor, action: string, fields: Record<string, unknown>): void {
  const by = "user" in actor ? { actor: "user", actor_user_id: actor.user } : { actor: actor.operator };
  logger.info("audit", { action, ...by, ...fields });
}

/** After a change to what replicas cache about a user: forget it everywhere, then write the audit line. */
export async function announceChange(
  deps: { userChanges: UserChanges; logger: Logger },
  actor: Actor,
  action: string,
  userId: string,
  fields: Record<string, unknown>,
): Promise<void> {
  await deps.userChanges.announce(userId);
  audit(deps.logger, actor, action, { target_user_id: userId, ...fields });
}
