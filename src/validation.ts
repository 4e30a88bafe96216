import { z } from "zod";
import { InvalidRequestError, NotFoundError } from "./errors";

/** Parses request input with a zod schema; the first problem becomes a 400 naming the parameter. */
export function parseInput<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const param = issue.path.length > 0 ? issue.path.join(".") : null;
  throw new InvalidRequestError(param ? `Invalid '${param}': ${issue.message}` : issue.message, {
    code: "invalid_value",
    param,
  });
}

/** Parses path parameters: a value that fails names nothing, so it is a 404 (as its schema describes it). */
export function parseParams<T>(schema: z.ZodType<T>, params: unknown): T {
  const parsed = schema.safeParse(params);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0] as { message: string; params?: { notFoundCode?: string; param?: string } };
  throw new NotFoundError(issue.message, {
    code: issue.params?.notFoundCode ?? "not_found",
    param: issue.params?.param,
  });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface IdSpec {
  /** What the id names, e.g. "api key": the 404 says `No api key found with id '…'.`, code `api_key_not_found`. */
  what: string;
  /** Default: a UUID (then lower-cased). */
  pattern?: RegExp;
  /** A message of the resource's own wording, and the parameter it names. */
  message?: (id: string) => string;
  param?: string;
}

/** An id path parameter. A malformed id is answered like an id that exists but is not the caller's: 404. */
export const idOf = ({ what, pattern = UUID, message, param }: IdSpec) =>
  z
    .string()
    .check((ctx) => {
      if (pattern.test(ctx.value)) return;
      ctx.issues.push({
        code: "custom",
        input: ctx.value,
        message: message?.(ctx.value) ?? `No ${what} found with id '${ctx.value}'.`,
        params: { notFoundCode: `${what.replace(/ /g, "_")}_not_found`, param },
      });
    })
    .transform((id) => (pattern === UUID ? id.toLowerCase() : id));

/** `{ id }` path parameters naming a UUID, for routes such as `/api-keys/:id`. */
export const idParams = (what: string) => z.object({ id: idOf({ what }) });
