import type { NextFunction, Request, RequestHandler, Response } from "express";
import type { Authenticator, Principal } from "../identity";
import { setRequestUser } from "./request-context";

/** Authenticates one request and remembers the caller on it. */
export async function authenticateRequest(
  authenticator: Authenticator,
  req: Request,
  res: Response,
): Promise<Principal> {
  // Anthropic's SDK sends its key as x-api-key; everything else uses Authorization: Bearer.
  const apiKeyHeader = req.get("x-api-key");
  const principal = await authenticator.authenticate(
    req.get("authorization") ?? (apiKeyHeader ? `Bearer ${apiKeyHeader}` : undefined),
  );
  res.locals.principal = principal;
  setRequestUser(res, principal.userId);
  return principal;
}

/** Authenticates every request of the router it is mounted on; handlers read the caller with `principalOf`. */
export function requireUser(authenticator: Authenticator): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    await authenticateRequest(authenticator, req, res);
    next();
  };
}

export function principalOf(res: Response): Principal {
  const principal = res.locals.principal as Principal | undefined;
  if (!principal) throw new Error("principalOf used on a route without requireUser");
  return principal;
}
