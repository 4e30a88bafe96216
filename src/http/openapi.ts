import { dirname } from "node:path";
import express, { type Express, Router } from "express";
import { z } from "zod";
import type { Access, ApiRouter, Guards, Operation } from "./api-router";
import { AnthropicErrorResponse, documentedHeaders, ErrorResponse } from "./schemas";

type JsonSchema = Record<string, unknown>;

// On every response (see request-context.ts).
const REQUEST_ID_HEADERS = ["x-request-id", "x-perpetual-request-id"];

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: "Invalid request: the message names the parameter.",
  401: "Missing, unknown, revoked or expired credentials.",
  402: "The plan's monthly spend cap is reached or its prepaid balance is used up (`insufficient_quota`).",
  403: "The account or the admin API is disabled, or a webhook signature was rejected.",
  404: "Not found (or not the caller's).",
  409: "Conflict.",
  429: "A rate limit was hit: `retry-after` says when to retry.",
  500: "Unexpected server error.",
  502: "The provider failed or could not be reached.",
  503: "A dependency (database, rate limiter) is unavailable.",
  504: "The provider timed out.",
};

const SECURITY: Record<Access, Record<string, string[]>[]> = {
  api_key: [{ apiKey: [] }, { anthropicApiKey: [] }],
  admin: [{ adminKey: [] }],
  metrics_token: [{ metricsToken: [] }],
  webhook_signature: [{ webhookSignature: [] }],
  public: [],
};

/**
 * Mounts documented routers on the app and builds the OpenAPI 3.1 document from exactly what was mounted: paths,
 * parameters and bodies come from the zod schemas the handlers parse with (zod's own JSON Schema conversion).
 */
export class ApiCatalog {
  private readonly mounted: { prefix: string; api: ApiRouter }[] = [];
  private document?: JsonSchema;

  constructor(
    private readonly info: { title: string; version: string },
    private readonly guards: Guards,
  ) {}

  /** Serves the router's routes, each behind the guard of its declared access, and documents them. */
  mount(app: Express, prefix: string, api: ApiRouter): void {
    app.use(prefix, api.build(this.guards));
    this.mounted.push({ prefix: prefix === "/" ? "" : prefix, api });
  }

  /** Built once, on first request: schemas do not change while the process runs. */
  openApiDocument(): JsonSchema {
    this.document ??= this.build();
    return this.document;
  }

  /** GET /openapi.json and GET /docs (Swagger UI, served from the swagger-ui-dist package: no CDN). */
  routes(): Router {
    const router = Router();
    router.get("/openapi.json", (_req, res) => {
      res.json(this.openApiDocument());
    });
    router.get("/docs", (_req, res) => {
      res.set("content-type", "text/html; charset=utf-8").send(docsPage(this.info.title));
    });
    router.use("/docs", express.static(swaggerUiDirectory(), { index: false, maxAge: "1h" }));
    return router;
  }

  private build(): JsonSchema {
    const components = new Components();
    const paths: Record<string, Record<string, unknown>> = {};
    const operationIds = new Set<string>();
    for (const { prefix, api } of this.mounted) {
      for (const operation of api.operations) {
        const path = (prefix + operation.path).replace(/:(\w+)/g, "{$1}");
        const operationId = uniqueId(`${operation.method}${path}`, operationIds);
        paths[path] ??= {};
        paths[path][operation.method] = describeOperation(operation, api.tag, operationId, components);
      }
    }
    return {
      openapi: "3.1.0",
      info: {
        title: `${this.info.title} API`,
        version: this.info.version,
        description:
          "OpenAI-compatible (and Anthropic-compatible) chat API with bring-your-own-key providers and persistent " +
          "memory. Errors use OpenAI's shape; `x-request-id` is on every response.",
      },
      tags: [...new Set(this.mounted.map((m) => m.api.tag))].map((name) => ({ name })),
      paths,
      components: {
        schemas: components.schemas,
        securitySchemes: {
          apiKey: {
            type: "http",
            scheme: "bearer",
            description: "A Perpetual API key (`sk-perp-…`) or a Supabase access token (JWT).",
          },
          anthropicApiKey: {
            type: "apiKey",
            in: "header",
            name: "x-api-key",
            description: "The same key, as Anthropic's SDK sends it.",
          },
          adminKey: { type: "http", scheme: "bearer", description: "ADMIN_API_KEY." },
          metricsToken: { type: "http", scheme: "bearer", description: "METRICS_TOKEN, when set." },
          webhookSignature: {
            type: "apiKey",
            in: "header",
            name: "webhook-signature",
            description: "Standard Webhooks signature (with webhook-id and webhook-timestamp); 403 when it fails.",
          },
        },
      },
    };
  }
}

function describeOperation(operation: Operation, tag: string, operationId: string, components: Components) {
  const body = operation.body ?? operation.bodyCheckedElsewhere?.schema;
  const parameters: unknown[] = [...operation.path.matchAll(/:(\w+)/g)].map(([, name]) => ({
    name,
    in: "path",
    required: true,
    schema: { type: "string" },
  }));
  if (operation.query) {
    const query = components.convert(operation.query, "input");
    const required = new Set((query.required as string[] | undefined) ?? []);
    for (const [name, schema] of Object.entries((query.properties as Record<string, unknown>) ?? {})) {
      parameters.push({ name, in: "query", required: required.has(name), schema });
    }
  }
  for (const [name, description] of Object.entries(operation.requestHeaders ?? {})) {
    parameters.push({ name, in: "header", required: false, description, schema: { type: "string" } });
  }

  const responses: Record<string, unknown> = {};
  for (const [status, spec] of Object.entries(operation.responses)) {
    responses[status] = {
      description: spec.description,
      headers: headersObject([...REQUEST_ID_HEADERS, ...(spec.headers ?? [])]),
      ...(spec.content && {
        content: Object.fromEntries(
          Object.entries(spec.content).map(([type, schema]) => [
            type,
            schema ? { schema: components.convert(schema, "output") } : {},
          ]),
        ),
      }),
    };
  }
  const errorSchema = components.convert(operation.anthropicErrors ? AnthropicErrorResponse : ErrorResponse, "output");
  for (const status of errorStatuses(operation)) {
    responses[status] ??= {
      description: ERROR_DESCRIPTIONS[status] ?? "Error.",
      headers: headersObject(
        status === 429 ? [...REQUEST_ID_HEADERS, "retry-after", "retry-after-ms"] : [...REQUEST_ID_HEADERS],
      ),
      content: { "application/json": { schema: errorSchema } },
    };
  }

  return {
    operationId,
    tags: [tag],
    summary: operation.summary,
    ...(operation.description && { description: operation.description }),
    security: SECURITY[operation.access],
    ...(parameters.length > 0 && { parameters }),
    ...(body && {
      requestBody: { required: true, content: { "application/json": { schema: components.convert(body, "input") } } },
    }),
    responses,
  };
}

function errorStatuses(operation: Operation): number[] {
  const statuses = new Set(operation.errors ?? []);
  if (operation.body || operation.bodyCheckedElsewhere || operation.query) statuses.add(400);
  if (operation.access === "webhook_signature") statuses.add(403);
  else if (operation.access !== "public") statuses.add(401);
  statuses.add(500);
  return [...statuses].sort((a, b) => a - b);
}

function headersObject(names: readonly string[]) {
  return Object.fromEntries(
    names.map((name) => [name, { description: documentedHeaders[name] ?? "", schema: { type: "string" } }]),
  );
}

function uniqueId(raw: string, taken: Set<string>): string {
  const base = raw
    .replace(/[{}]/g, "")
    .replace(/[^A-Za-z0-9]+(\w)?/g, (_, c: string | undefined) => (c ?? "").toUpperCase());
  let id = base;
  for (let n = 2; taken.has(id); n++) id = `${base}${n}`;
  taken.add(id);
  return id;
}

/** Named schemas (zod `.meta({ id })`) become shared components; everything else is inlined where it is used. */
class Components {
  readonly schemas: Record<string, JsonSchema> = {};
  private readonly serialized = new Map<string, string>();

  convert(schema: z.ZodType, io: "input" | "output"): JsonSchema {
    const converted = z.toJSONSchema(schema, { target: "draft-2020-12", io }) as JsonSchema;
    const {
      $schema: _,
      $defs,
      ...root
    } = JSON.parse(JSON.stringify(converted).replaceAll('"#/$defs/', '"#/components/schemas/')) as JsonSchema & {
      $defs?: Record<string, JsonSchema>;
    };
    for (const [id, definition] of Object.entries($defs ?? {})) this.add(id, definition);
    return root;
  }

  private add(id: string, definition: JsonSchema): void {
    const text = JSON.stringify(definition);
    const existing = this.serialized.get(id);
    if (existing !== undefined && existing !== text) {
      throw new Error(`Two different schemas are named '${id}' in the API description`);
    }
    this.serialized.set(id, text);
    this.schemas[id] = definition;
  }
}

function swaggerUiDirectory(): string {
  return dirname(require.resolve("swagger-ui-dist/package.json"));
}

function docsPage(title: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title.replace(/[<>&"]/g, "")} API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
</script>
</body>
</html>`;
}
