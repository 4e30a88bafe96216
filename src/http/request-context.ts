import { randomUUID } from "node:crypto";
import type { NextFunction, Request, Response } from "express";
import { addLogContext, type Logger, withLogContext } from "../log";

// A caller's id is echoed back only if it is short and plain; anything else is replaced, never reflected.
const ACCEPTABLE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestIdOf(res: Response): string {
  return String(res.locals.requestId ?? "");
}

/** Records the user id on the request's log line and every log line after it. */
export function setRequestUser(res: Response, userId: string): void {
  res.locals.userId = userId;
  addLogContext({ user_id: userId });
}

/**
 * First middleware: assigns the request id (x-request-id in and out), binds it to every log line written while
 * the request is handled, and logs one line per request when the response is finished or abandoned.
 */
export function requestContext(logger: Logger) {
  return (req: Request, res: Response, next: NextFunction) => {
    const incoming = req.get("x-request-id");
    const requestId =
      incoming && ACCEPTABLE_REQUEST_ID.test(incoming) ? incoming : `req_${randomUUID().replace(/-/g, "")}`;
    res.locals.requestId = requestId;
    res.setHeader("x-request-id", requestId);
    const started = process.hrtime.bigint();
    let logged = false;
    const logLine = () => {
      if (logged) return;
      logged = true;
      const aborted = !res.writableFinished;
      logger.info("request", {
        request_id: requestId,
        method: req.method,
        path: req.path,
        status: aborted ? 499 : res.statusCode,
        latency_ms: Math.round(Number(process.hrtime.bigint() - started) / 1e4) / 100,
        user_id: res.locals.userId,
        ...(aborted ? { aborted: true } : {}),
      });
    };
    res.once("finish", logLine);
    res.once("close", logLine);
    withLogContext({ request_id: requestId }, next);
  };
}
