import Ajv2020 from "ajv/dist/2020";
import addFormats from "ajv-formats";

type Document = { paths: Record<string, Record<string, { responses: Record<string, Response> }>> };
type Response = { content?: Record<string, { schema?: unknown }> };

const BASE = "https://perpetual.test/openapi.json";
const pointer = (...segments: string[]) =>
  segments.map((s) => `/${encodeURIComponent(s.replaceAll("~", "~0").replaceAll("/", "~1"))}`).join("");

/** Checks real responses against the published OpenAPI document (JSON Schema 2020-12, as OpenAPI 3.1 uses). */
export class OpenApiConformance {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true });
  private readonly validators = new Map<string, ReturnType<Ajv2020["compile"]>>();

  constructor(private readonly document: Document) {
    addFormats(this.ajv);
    this.ajv.addSchema({ ...document, $id: BASE });
  }

  /** The statuses the document lists for an operation. */
  statuses(method: string, path: string): string[] {
    return Object.keys(this.operation(method, path).responses);
  }

  /** Problems with one response (empty when it conforms): an undocumented status, or a body off its schema. */
  problems(method: string, path: string, status: number, contentType: string, body: unknown): string[] {
    const response = this.operation(method, path).responses[String(status)];
    if (!response) return [`${method.toUpperCase()} ${path}: status ${status} is not documented`];
    const media = contentType.split(";")[0]!.trim();
    const content = response.content?.[media];
    if (!content) return [`${method.toUpperCase()} ${path} ${status}: content type ${media} is not documented`];
    if (!content.schema) return [];
    const ref = `${BASE}#${pointer("paths", path, method, "responses", String(status), "content", media, "schema")}`;
    const validate = this.validators.get(ref) ?? this.ajv.compile({ $ref: ref });
    this.validators.set(ref, validate);
    if (validate(body)) return [];
    return (validate.errors ?? []).map(
      (e) =>
        `${method.toUpperCase()} ${path} ${status}: ${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`,
    );
  }

  private operation(method: string, path: string) {
    const operation = this.document.paths[path]?.[method];
    if (!operation) throw new Error(`${method.toUpperCase()} ${path} is not in the document`);
    return operation;
  }
}
