import express, { type RequestHandler } from "express";
import { decoderFor, parseJson } from "../json/parse";

/**
 * express.json's behaviour — media type, size limit, gzip/deflate, utf-* charsets, strict top-level object or array,
 * an empty body as {}, and body-parser's error types (the error handler maps them) — with bodies past
 * OFF_THREAD_BYTES decoded and parsed in the JSON thread instead of on the event loop (see json/parse.ts).
 */
export function jsonBodies(limit: number): RequestHandler {
  const raw = express.raw({ type: "application/json", limit });
  return (req, res, next) => {
    const before: unknown = req.body;
    raw(req, res, (error?: unknown) => {
      if (error) return next(error);
      const bytes: unknown = req.body;
      // Not a JSON body, or one an earlier parser already took (the billing webhook's raw bytes).
      if (bytes === before || !Buffer.isBuffer(bytes)) return next();
      const charset = charsetOf(req.get("content-type"));
      if (!decodable(charset)) {
        return next(bodyError(415, `unsupported charset "${charset.toUpperCase()}"`, "charset.unsupported"));
      }
      if (bytes.length === 0) {
        req.body = {};
        return next();
      }
      parseJson(bytes, charset).then(
        (value) => {
          if (typeof value !== "object" || value === null) return next(notJson());
          req.body = value;
          next();
        },
        () => next(notJson()),
      );
    });
  };
}

const charsetOf = (contentType = "") =>
  (/;\s*charset\s*=\s*"?([^";\s]+)/i.exec(contentType)?.[1] ?? "utf-8").toLowerCase();

/** RFC 7159 section 8.1, as body-parser asserts it: a utf-* charset (and one this runtime decodes). */
const decodable = (charset: string) => charset.startsWith("utf-") && decoderFor(charset) !== undefined;

const notJson = () => bodyError(400, "The request body is not a JSON object or array.", "entity.parse.failed");

/** An error shaped as body-parser's (http-errors with a `type`), so one mapping serves both. */
function bodyError(status: number, message: string, type: string): Error {
  return Object.assign(new Error(message), { status, statusCode: status, expose: true, type });
}
