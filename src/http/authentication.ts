import type { NextFunction, Request, RequestHandler, Response } from "express";
import type { Authenticator, Principal } from "../identity";
import { setRequestUser } from "./request-context";

/** Authenticates every request of the router it is mounted on; handlers read the caller with `principalOf`. */
export function requireUser(authenticator: Authenticator): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    const principal = await authenticator.authenticate(req.get("authorization"));
    res.locals.principal = principal;
    setRequestUser(res, principal.userId);
    next();
  };
}

export function principalOf(res: Response): Principal {
  const principal = res.locals.principal as Principal | undefined;
  if (!principal) throw new Error("principalOf used on a route without requireUser");
  return principal;
}
