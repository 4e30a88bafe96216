import { type RequestHandler, Router } from "express";
import type { z } from "zod";

/** Who may call an operation; each maps to a security scheme in the OpenAPI document. */
export type Access = "api_key" | "admin" | "metrics_token" | "webhook_signature" | "public";

export interface ResponseSpec {
  description: string;
  /** Content type → body schema (undefined: a body without a schema, e.g. Prometheus text). */
  content?: Record<string, z.ZodType | undefined>;
  /** Response header names documented on this response (see `documentedHeaders`). */
  headers?: readonly string[];
}

export interface Operation {
  method: "get" | "post" | "patch" | "delete";
  /** Express-style path relative to the router's mount point, e.g. `/api-keys/:id`. */
  path: string;
  summary: string;
  description?: string;
  access: Access;
  body?: z.ZodType;
  query?: z.ZodObject;
  /** Request headers the operation reads (name → description). */
  requestHeaders?: Record<string, string>;
  responses: Record<number, ResponseSpec>;
  /** Error statuses besides the ones implied by access and body (401, 400). */
  errors?: readonly number[];
  /** Error bodies follow Anthropic's shape instead of OpenAI's. */
  anthropicErrors?: boolean;
}

/**
 * An Express router whose every route carries its own OpenAPI description, so the published document is built from
 * exactly the routes that are mounted and the zod schemas they parse with: a route cannot exist undocumented.
 */
export class ApiRouter {
  readonly router = Router();
  readonly operations: Operation[] = [];

  constructor(readonly tag: string) {}

  /** Middleware (authentication, ...) for every route of this router, or only for the routes under `paths`. */
  use(handler: RequestHandler, paths?: string[]): void {
    if (paths) this.router.use(paths, handler);
    else this.router.use(handler);
  }

  route(operation: Operation, handler: RequestHandler): void {
    this.operations.push(operation);
    this.router[operation.method](operation.path, handler);
  }
}

/** Response content of a JSON body. */
export const json = (schema: z.ZodType) => ({ "application/json": schema });
