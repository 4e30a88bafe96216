import { type Request, type RequestHandler, type Response, Router } from "express";
import type { z } from "zod";
import { parseInput, parseParams } from "../validation";

/** Who may call an operation; each maps to a guard (guards.ts) and a security scheme in the OpenAPI document. */
export type Access = "api_key" | "admin" | "metrics_token" | "webhook_signature" | "public";

/** The middleware that admits a caller for each kind of access ("public" needs none). */
export type Guards = Record<Exclude<Access, "public">, RequestHandler>;

export interface ResponseSpec {
  description: string;
  /** Content type → body schema (undefined: a body without a schema, e.g. Prometheus text). */
  content?: Record<string, z.ZodType | undefined>;
  /** Response header names documented on this response (see `documentedHeaders`). */
  headers?: readonly string[];
}

export interface Operation<Body = unknown, Query = unknown, Params = unknown> {
  method: "get" | "post" | "patch" | "delete";
  /** Express-style path relative to the router's mount point, e.g. `/api-keys/:id`. */
  path: string;
  summary: string;
  description?: string;
  /** Enforced: the route runs behind this access's guard; a route is public only when it says "public". */
  access: Access;
  /** Parsed before the handler runs (a failure is a 400 naming the parameter). */
  body?: z.ZodType<Body>;
  /**
   * A body documented here but checked elsewhere, on purpose: by the chat pipeline (so a refused request still
   * gets its usage row) or by the webhook signature guard (the signature covers the raw bytes, not parsed JSON).
   * The handler reads `req.body`.
   */
  bodyCheckedElsewhere?: { schema: z.ZodType; by: "pipeline" | "signature" };
  query?: z.ZodType<Query>;
  /** Path parameters; a value that fails is a 404 (a malformed id names nothing). See `idParams`. */
  params?: z.ZodType<Params>;
  /** Request headers the operation reads (name → description). */
  requestHeaders?: Record<string, string>;
  responses: Record<number, ResponseSpec>;
  /** Error statuses besides the ones implied by access and body (401, 400). */
  errors?: readonly number[];
  /** Error bodies follow Anthropic's shape instead of OpenAI's. */
  anthropicErrors?: boolean;
}

/** What a handler receives, already validated and typed by the operation's schemas. */
export interface RouteInput<Body, Query, Params> {
  body: Body;
  query: Query;
  params: Params;
}

export type RouteHandler<Body, Query, Params> = (
  input: RouteInput<Body, Query, Params>,
  res: Response,
  req: Request,
) => unknown;

interface Route {
  operation: Operation;
  handler: RouteHandler<unknown, unknown, unknown>;
}

/**
 * Routes that carry their own OpenAPI description and enforce it: the published document is built from exactly
 * the routes that are mounted, each runs behind the guard of its declared access, and its handler gets the body,
 * query and path parameters parsed by the declared schemas. A route cannot be undocumented, unguarded or unparsed.
 */
export class ApiRouter {
  private readonly routes: Route[] = [];

  constructor(readonly tag: string) {}

  get operations(): readonly Operation[] {
    return this.routes.map((r) => r.operation);
  }

  route<Body = undefined, Query = undefined, Params = undefined>(
    operation: Operation<Body, Query, Params>,
    handler: RouteHandler<Body, Query, Params>,
  ): void {
    this.routes.push({ operation, handler } as unknown as Route);
  }

  /** The Express router; throws at start-up when an access has no guard, so nothing is served unguarded. */
  build(guards: Guards): Router {
    const router = Router();
    for (const { operation, handler } of this.routes) {
      const guard = operation.access === "public" ? [] : [guards[operation.access]];
      if (guard.some((g) => g === undefined)) {
        throw new Error(`${operation.method} ${operation.path}: no guard for access '${operation.access}'`);
      }
      router[operation.method](operation.path, ...guard, async (req, res) => {
        await handler(inputOf(operation, req), res, req);
      });
    }
    return router;
  }
}

function inputOf(operation: Operation, req: Request): RouteInput<unknown, unknown, unknown> {
  return {
    // Path parameters first: a malformed id is a 404 whatever the body says.
    params: operation.params ? parseParams(operation.params, req.params) : req.params,
    query: operation.query ? parseInput(operation.query, req.query) : undefined,
    body: operation.body ? parseInput(operation.body, req.body) : undefined,
  };
}

/** Response content of a JSON body. */
export const json = (schema: z.ZodType) => ({ "application/json": schema });
