import type { z } from "zod";
import { invalidRequest, notFound } from "./errors";

/** Parses a request body with a zod schema; the first problem becomes a 400 naming the parameter. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const param = issue.path.length > 0 ? issue.path.join(".") : null;
  throw invalidRequest(param ? `Invalid '${param}': ${issue.message}` : issue.message, "invalid_value", param);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A malformed id cannot name anything: 404, the same as an id that exists but is not the caller's. */
export function uuidParam(value: string | string[] | undefined, what: string): string {
  if (typeof value === "string" && UUID.test(value)) return value.toLowerCase();
  throw notFound(`No ${what} found with id '${String(value)}'.`, `${what.replace(/ /g, "_")}_not_found`);
}
