import { randomUUID } from "node:crypto";
import type { NextFunction, Request, Response } from "express";
import { addLogContext, type Logger, logRequest, withLogContext } from "../log";

// A caller's id is echoed back only if it is short and plain; anything else is replaced, never reflected.
const ACCEPTABLE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The server's own id of this request: it keys the usage row and billing event, whatever the caller sent. */
export function requestIdOf(res: Response): string {
  return String(res.locals.requestId ?? "");
}

/** Both ids, as the chat pipeline takes them: the caller's x-request-id (when acceptable) is kept beside the usage
 * row for tracing, never as its key. */
export function requestIdsOf(res: Response): { requestId: string; clientRequestId: string | null } {
  return { requestId: requestIdOf(res), clientRequestId: (res.locals.clientRequestId as string | undefined) ?? null };
}

const SERVER_REQUEST_ID_HEADER = "x-perpetual-request-id";

/** Records the user id on the request's log line and every log line after it. */
export function setRequestUser(res: Response, userId: string): void {
  res.locals.userId = userId;
  addLogContext({ user_id: userId });
}

/**
 * First middleware: assigns the server's request id, keeps the caller's x-request-id for tracing (echoed back in
 * x-request-id; the server's id is in x-perpetual-request-id, and in x-request-id when the caller sent none),
 * binds both to every log line written while the request is handled, and logs one line per request when the
 * response is finished or abandoned.
 */
export function requestContext(logger: Logger) {
  return (req: Request, res: Response, next: NextFunction) => {
    const incoming = req.get("x-request-id");
    const clientRequestId = incoming && ACCEPTABLE_REQUEST_ID.test(incoming) ? incoming : undefined;
    const requestId = `req_${randomUUID().replace(/-/g, "")}`;
    res.locals.requestId = requestId;
    res.locals.clientRequestId = clientRequestId;
    res.setHeader("x-request-id", clientRequestId ?? requestId);
    res.setHeader(SERVER_REQUEST_ID_HEADER, requestId);
    const ids = { request_id: requestId, ...(clientRequestId ? { client_request_id: clientRequestId } : {}) };
    const started = process.hrtime.bigint();
    let logged = false;
    const logLine = () => {
      if (logged) return;
      logged = true;
      const aborted = !res.writableFinished;
      logRequest(logger, {
        ...ids,
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
    withLogContext(ids, next);
  };
}
