/**
 * The one error type that reaches clients. Its body is OpenAI's error shape, which the official SDKs read into
 * their APIError classes: {"error": {"message", "type", "param", "code"}}.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    /** Extra response headers, e.g. retry-after or x-should-retry. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }

  toBody(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const invalidRequest = (message: string, code: string | null = null, param: string | null = null) =>
  new ApiError(400, message, "invalid_request_error", code, param);

export const notFound = (message: string, code: string | null = null, param: string | null = null) =>
  new ApiError(404, message, "invalid_request_error", code, param);

export const serverError = (message = "The server had an error while processing your request.") =>
  new ApiError(500, message, "server_error", "internal_error");

export const serviceUnavailable = (message: string, code = "service_unavailable") =>
  new ApiError(503, message, "server_error", code);
