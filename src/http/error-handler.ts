import type { NextFunction, Request, Response } from "express";
import { DatabaseUnavailableError } from "../db";
import {
  ApiError,
  InternalServerError,
  InvalidRequestError,
  NotFoundError,
  RateLimitedError,
  ServiceUnavailableError,
  UnreadableBodyError,
  UpstreamFailedError,
} from "../errors";
import type { Logger } from "../log";
import { UpstreamError } from "../providers";
import { EncryptionError } from "../vault";

/** Errors raised by express.json (body-parser) carry a `type`; each maps to a client error, never a 500. */
function fromBodyParserError(error: { type?: unknown; limit?: unknown }): ApiError | undefined {
  switch (error.type) {
    case "entity.parse.failed":
      return new InvalidRequestError(
        "We could not parse the JSON body of your request. Send valid JSON with Content-Type: application/json.",
        { code: "invalid_json" },
      );
    case "entity.too.large":
      return new UnreadableBodyError(
        413,
        `The request body is larger than the limit of ${String(error.limit)} bytes.`,
        {
          code: "request_too_large",
        },
      );
    case "encoding.unsupported":
    case "charset.unsupported":
      return new UnreadableBodyError(415, "Unsupported content encoding or charset.", { code: "unsupported_encoding" });
    case "request.aborted":
    case "request.size.invalid":
      return new InvalidRequestError("The request body was incomplete.", { code: "incomplete_body" });
    default:
      return undefined;
  }
}

export function notFoundHandler(req: Request, _res: Response, next: NextFunction): void {
  next(new NotFoundError(`Invalid URL (${req.method} ${req.path})`, { code: "unknown_url" }));
}

/** A provider's failure as our client sees it: 4xx kept (429 with its retry-after), 5xx → 502, timeouts → 504. */
function fromUpstreamError(error: UpstreamError): ApiError {
  const { provider, status, details } = error;
  if (status === 0) {
    const timeout = details.code === "upstream_timeout";
    return new UpstreamFailedError(timeout ? 504 : 502, error.message, {
      code: details.code ?? "upstream_unreachable",
    });
  }
  if (status === 429) {
    return new RateLimitedError(`${provider}: ${error.message}`, {
      headers: details.retryAfter ? { "retry-after": details.retryAfter } : {},
    });
  }
  if (status >= 400 && status < 500) {
    // The provider's own status and type pass through: the client's SDK reacts to them as it would upstream.
    return new ApiError(status, `${provider}: ${error.message}`, details.type ?? "invalid_request_error", {
      code: details.code,
      param: details.param,
    });
  }
  return new UpstreamFailedError(502, `${provider} returned an error (${status}): ${error.message}`);
}

/** The one mapping from anything thrown to what the client sees. */
export function toApiError(error: unknown, logger: Logger): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof UpstreamError) {
    logger.warn("provider error", { provider: error.provider, upstream_status: error.status, message: error.message });
    return fromUpstreamError(error);
  }
  if (error instanceof EncryptionError) {
    logger.error("stored provider key could not be decrypted");
    return new InternalServerError("Encryption error", { code: "encryption_error" });
  }
  // The router could not percent-decode a path parameter (`/v1/api-keys/%`): the caller's URL is malformed.
  if (error instanceof URIError) {
    return new InvalidRequestError("A path parameter of the URL is not valid percent-encoding.", {
      code: "invalid_path",
    });
  }
  if (error instanceof DatabaseUnavailableError) {
    logger.warn("database unavailable", { error: error.cause });
    return new ServiceUnavailableError("The service is temporarily unavailable. Please retry shortly.");
  }
  const fromBody = fromBodyParserError((error ?? {}) as { type?: unknown; limit?: unknown });
  if (fromBody) return fromBody;
  logger.error("unhandled error", { error });
  return new InternalServerError();
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
