import type { NextFunction, Request, Response } from "express";
import { isDatabaseUnavailable } from "../db";
import { ApiError, invalidRequest, serverError, serviceUnavailable } from "../errors";
import type { Logger } from "../log";
import { UpstreamError } from "../providers";
import { EncryptionError } from "../vault";

/** Errors raised by express.json (body-parser) carry a `type`; each maps to a client error, never a 500. */
function fromBodyParserError(error: { type?: unknown; limit?: unknown }): ApiError | undefined {
  switch (error.type) {
    case "entity.parse.failed":
      return invalidRequest(
        "We could not parse the JSON body of your request. Send valid JSON with Content-Type: application/json.",
        "invalid_json",
      );
    case "entity.too.large":
      return new ApiError(
        413,
        `The request body is larger than the limit of ${String(error.limit)} bytes.`,
        "invalid_request_error",
        "request_too_large",
      );
    case "encoding.unsupported":
    case "charset.unsupported":
      return new ApiError(
        415,
        "Unsupported content encoding or charset.",
        "invalid_request_error",
        "unsupported_encoding",
      );
    case "request.aborted":
    case "request.size.invalid":
      return invalidRequest("The request body was incomplete.", "incomplete_body");
    default:
      return undefined;
  }
}

export function notFoundHandler(req: Request, _res: Response, next: NextFunction): void {
  next(new ApiError(404, `Invalid URL (${req.method} ${req.path})`, "invalid_request_error", "unknown_url"));
}

/** A provider's failure as our client sees it: 4xx kept (429 with its retry-after), 5xx → 502, timeouts → 504. */
function fromUpstreamError(error: UpstreamError): ApiError {
  const { provider, status, details } = error;
  if (status === 0) {
    const timeout = details.code === "upstream_timeout";
    return new ApiError(timeout ? 504 : 502, error.message, "server_error", details.code ?? "upstream_unreachable");
  }
  if (status === 429) {
    return new ApiError(429, `${provider}: ${error.message}`, "rate_limit_error", "rate_limit_exceeded", null, {
      ...(details.retryAfter ? { "retry-after": details.retryAfter } : {}),
    });
  }
  if (status >= 400 && status < 500) {
    return new ApiError(
      status,
      `${provider}: ${error.message}`,
      details.type ?? "invalid_request_error",
      details.code ?? null,
      details.param ?? null,
    );
  }
  return new ApiError(
    502,
    `${provider} returned an error (${status}): ${error.message}`,
    "server_error",
    "upstream_error",
  );
}

export function toApiError(error: unknown, logger: Logger): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof UpstreamError) {
    logger.warn("provider error", { provider: error.provider, upstream_status: error.status, message: error.message });
    return fromUpstreamError(error);
  }
  if (error instanceof EncryptionError) {
    logger.error("stored provider key could not be decrypted");
    return new ApiError(500, "Encryption error", "server_error", "encryption_error");
  }
  // The router could not percent-decode a path parameter (`/v1/api-keys/%`): the caller's URL is malformed.
  if (error instanceof URIError) {
    return invalidRequest("A path parameter of the URL is not valid percent-encoding.", "invalid_path");
  }
  if (isDatabaseUnavailable(error)) {
    logger.warn("database unavailable", { error });
    return serviceUnavailable("The service is temporarily unavailable. Please retry shortly.");
  }
  const fromBody = fromBodyParserError((error ?? {}) as { type?: unknown; limit?: unknown });
  if (fromBody) return fromBody;
  logger.error("unhandled error", { error });
  return serverError();
}

const ANTHROPIC_ERROR_TYPES: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  402: "billing_error",
  403: "permission_error",
  404: "not_found_error",
  413: "request_too_large",
  429: "rate_limit_error",
  504: "timeout_error",
  529: "overloaded_error",
};

/** Anthropic's error body, which @anthropic-ai/sdk reads: {"type": "error", "error": {"type", "message"}}. */
export function anthropicErrorBody(error: ApiError) {
  return { type: "error", error: { type: ANTHROPIC_ERROR_TYPES[error.status] ?? "api_error", message: error.message } };
}

/**
 * The single place errors become responses, the request id header already set: OpenAI's shape, or Anthropic's
 * for anything under `anthropicPath` (POST /v1/messages and its neighbours), whatever failed first — the body
 * parser, routing, or the handler.
 */
export function errorHandler(logger: Logger, anthropicPath: string) {
  return (error: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const apiError = toApiError(error, logger);
    res.locals.errorType = apiError.type;
    if (res.headersSent) {
      // Too late for a status code: end what was started so the client is not left waiting.
      res.end();
      return;
    }
    const anthropic = req.path === anthropicPath || req.path.startsWith(`${anthropicPath}/`);
    res
      .set(apiError.headers)
      .status(apiError.status)
      .json(anthropic ? anthropicErrorBody(apiError) : apiError.toBody());
  };
}
