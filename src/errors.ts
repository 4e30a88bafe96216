/**
 * Errors a client may see, in the manner of openai-node's hierarchy: one class per kind, each knowing its HTTP
 * status and OpenAI error type. Anything thrown that is not one of these is mapped once, in http/error-handler.ts.
 */

export interface ErrorDetails {
  /** Machine-readable code, e.g. `invalid_api_key`. */
  code?: string | null;
  /** The request parameter at fault, e.g. `model` or `messages.0.content`. */
  param?: string | null;
  /** Extra response headers, e.g. retry-after or x-should-retry. */
  headers?: Record<string, string>;
}

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export class ApiError extends Error {
  readonly code: string | null;
  readonly param: string | null;
  readonly headers: Record<string, string>;

  constructor(
    readonly status: number,
    message: string,
    /** OpenAI's `error.type`, e.g. `invalid_request_error`. */
    readonly type: string,
    details: ErrorDetails = {},
  ) {
    super(message);
    this.name = new.target.name;
    this.code = details.code ?? null;
    this.param = details.param ?? null;
    this.headers = details.headers ?? {};
  }

  toBody(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** 400: the request itself is wrong; `param` names the field. */
export class InvalidRequestError extends ApiError {
  constructor(message: string, details?: ErrorDetails) {
    super(400, message, "invalid_request_error", details);
  }
}

/** 401: missing, unknown, revoked or expired credentials. */
export class AuthenticationError extends ApiError {
  constructor(message: string, details?: ErrorDetails) {
    super(401, message, "invalid_request_error", { code: "invalid_api_key", ...details });
  }
}

/** 402: the plan's spend cap or prepaid balance is used up. */
export class PaymentRequiredError extends ApiError {
  constructor(message: string, details?: ErrorDetails) {
    super(402, message, "insufficient_quota", {
      code: "insufficient_quota",
      ...details,
      headers: { "x-should-retry": "false", ...details?.headers },
    });
  }
}

/** 403: the caller is known but may not do this (a disabled account, a disabled API, a bad signature). */
export class PermissionDeniedError extends ApiError {
  constructor(message: string, details?: ErrorDetails) {
    super(403, message, "permission_error", details);
  }
}

/** 404: nothing of the caller's has that name (which is also what another tenant's id looks like). */
export class NotFoundError extends ApiError {
  constructor(message: string, details?: ErrorDetails) {
    super(404, message, "invalid_request_error", details);
  }
}

/** 409: the request conflicts with what exists (an email already taken). */
export class ConflictError extends ApiError {
  constructor(message: string, details?: ErrorDetails) {
    super(409, message, "invalid_request_error", details);
  }
}

/** 413 / 415: a body too large or in an encoding we do not read. */
export class UnreadableBodyError extends ApiError {
  constructor(status: 413 | 415, message: string, details?: ErrorDetails) {
    super(status, message, "invalid_request_error", details);
  }
}

/**
 * 429: a limit was hit; `retry-after` says when to retry. The type is OpenAI's limit kind (`requests`, `tokens`)
 * for our own limits, `rate_limit_error` for a provider's.
 */
export class RateLimitedError extends ApiError {
  constructor(message: string, details?: ErrorDetails & { kind?: "requests" | "tokens" }) {
    super(429, message, details?.kind ?? "rate_limit_error", { code: "rate_limit_exceeded", ...details });
  }
}

/** 502 / 504: the provider (or another upstream such as Polar) failed, could not be reached, or timed out. */
export class UpstreamFailedError extends ApiError {
  constructor(status: 502 | 504, message: string, details?: ErrorDetails) {
    super(status, message, "server_error", { code: "upstream_error", ...details });
  }
}

/** 503: a dependency (database, memory store) is unavailable; retrying later may work. */
export class ServiceUnavailableError extends ApiError {
  constructor(message: string, details?: ErrorDetails) {
    super(503, message, "server_error", { code: "service_unavailable", ...details });
  }
}

/** 500: our fault; the message never carries internals. */
export class InternalServerError extends ApiError {
  constructor(message = "The server had an error while processing your request.", details?: ErrorDetails) {
    super(500, message, "server_error", { code: "internal_error", ...details });
  }
}
