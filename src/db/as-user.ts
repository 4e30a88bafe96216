import type { Database, SqlExecutor } from "./types";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type Transaction = Database["transaction"];

/**
 * Builds `asUser` on top of an adapter's `transaction`. Role and claims are set with `set_config(..., true)`,
 * i.e. transaction-local: never session-level SET ROLE, which would outlive the transaction and leak to whoever
 * gets the pooled connection next.
 */
export function asUserVia(transaction: Transaction): Database["asUser"] {
  return (userId, fn) =>
    transaction(async (tx: SqlExecutor) => {
      if (!UUID.test(userId)) throw new TypeError("asUser needs a user id in UUID form");
      const claims = JSON.stringify({ sub: userId, role: "authenticated", aud: "authenticated" });
      await tx.query("select set_config('request.jwt.claims', $1, true), set_config('role', 'authenticated', true)", [
        claims,
      ]);
      return fn(tx);
    });
}
