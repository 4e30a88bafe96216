import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import Ajv, { type ValidateFunction } from "ajv";
import addFormats from "ajv-formats";

/**
 * A Qdrant-compatible REST server for tests: the subset of the API Perpetual uses (collections, payload indexes,
 * upsert, Query API with prefetch + RRF, scroll with order_by, count, delete by filter, collection snapshots:
 * create / download / delete / multipart upload with checksum), with Qdrant's semantics
 * (cosine on normalised vectors, sparse dot product with the IDF modifier, filters with must/should/must_not) and
 * its response envelope. Every request — path, method, query parameters and body — is validated against Qdrant's
 * official OpenAPI document (tests/fixtures/qdrant-openapi, Apache-2.0); a violation is answered with a 400 and
 * recorded in `violations`, which tests assert empty. `stop()` / `restart()` simulate an outage on the same port.
 */

type Json = Record<string, unknown>;
type Vector = number[] | { indices: number[]; values: number[] };
interface Point {
  id: string | number;
  vectors: Record<string, Vector>;
  payload: Json;
  version: number;
}
interface Collection {
  config: Json;
  dense: Record<string, number>;
  sparse: Record<string, { modifier?: string }>;
  indexes: Record<string, unknown>;
  points: Map<string, Point>;
}

export interface QdrantRequest {
  method: string;
  path: string;
  body: Json | undefined;
}

export interface FakeQdrant {
  url: string;
  requests: QdrantRequest[];
  violations: string[];
  collections: Map<string, Collection>;
  /** Payloads of every point in a collection. */
  payloads(collection: string): Json[];
  /** Closes the port (connections refused) until restart(); data is kept. */
  stop(): Promise<void>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

const DOCUMENT = JSON.parse(
  readFileSync(join(__dirname, "..", "fixtures", "qdrant-openapi", "openapi.json"), "utf8"),
) as { paths: Record<string, Record<string, Operation>>; components: Json };
interface Operation {
  requestBody?: { content: Record<string, { schema: unknown }> };
  parameters?: { name: string; in: string; required?: boolean; schema: Json }[];
}

/** OpenAPI 3.0's `nullable` as JSON Schema: Ajv validates the converted document. */
function toJsonSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toJsonSchema);
  if (!node || typeof node !== "object") return node;
  const { nullable, example: _example, ...rest } = node as Json;
  const converted: Json = {};
  for (const [key, value] of Object.entries(rest)) {
    converted[key] = key === "properties" || key === "definitions" ? mapValues(value as Json) : toJsonSchema(value);
  }
  if (nullable !== true) return converted;
  if (typeof converted.type === "string") return { ...converted, type: [converted.type, "null"] };
  const meaningful = Object.keys(converted).filter((k) => !["description", "default", "format"].includes(k));
  if (meaningful.length === 0) return { type: "null" };
  return { anyOf: [converted, { type: "null" }] };
}
const mapValues = (o: Json) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, toJsonSchema(v)]));

const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
for (const format of ["uint", "uint8", "uint16", "uint32", "uint64", "usize"]) {
  ajv.addFormat(format, { type: "number", validate: (n: number) => Number.isInteger(n) && n >= 0 });
}
for (const format of ["int", "int8", "int16", "int32", "int64"]) {
  ajv.addFormat(format, { type: "number", validate: (n: number) => Number.isInteger(n) });
}
for (const format of ["float", "double"]) ajv.addFormat(format, { type: "number", validate: () => true });
const BASE = "qdrant-openapi";
ajv.addSchema({ $id: BASE, components: toJsonSchema(DOCUMENT.components) });
const validators = new Map<string, ValidateFunction>();

function bodyValidator(schema: unknown): ValidateFunction {
  const key = JSON.stringify(schema);
  let validate = validators.get(key);
  if (!validate) {
    const rewritten = JSON.parse(key.replaceAll('"#/components/', `"${BASE}#/components/`));
    validate = ajv.compile(toJsonSchema(rewritten) as Json);
    validators.set(key, validate);
  }
  return validate;
}

/** The document's operation for a concrete path, with its path parameters. */
function findOperation(method: string, path: string): { template: string; op: Operation; params: Json } | undefined {
  for (const [template, operations] of Object.entries(DOCUMENT.paths)) {
    const names: string[] = [];
    const pattern = new RegExp(
      `^${template.replace(/\{([^}]+)\}/g, (_m, name: string) => {
        names.push(name);
        return "([^/]+)";
      })}$`,
    );
    const match = pattern.exec(path);
    const op = match && operations[method];
    if (match && op) {
      return {
        template,
        op,
        params: Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(match[i + 1]!)])),
      };
    }
  }
  return undefined;
}

function validateQuery(op: Operation, query: URLSearchParams): string[] {
  const problems: string[] = [];
  const declared = new Map((op.parameters ?? []).filter((p) => p.in === "query").map((p) => [p.name, p]));
  for (const [name, value] of query) {
    const parameter = declared.get(name);
    if (!parameter) {
      problems.push(`query parameter ${name} is not in the document`);
      continue;
    }
    const type = parameter.schema.type;
    if (type === "boolean" && !["true", "false"].includes(value)) problems.push(`${name}=${value} is not a boolean`);
    if (type === "integer" && !/^\d+$/.test(value)) problems.push(`${name}=${value} is not an integer`);
  }
  return problems;
}

const normalizeId = (id: string | number) => (typeof id === "string" ? id.toLowerCase() : id);
const idKey = (id: string | number) => String(normalizeId(id));

function unit(v: number[]): number[] {
  const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0)) || 1;
  return v.map((x) => x / norm);
}

function matches(point: Point, filter: Json | null | undefined): boolean {
  if (!filter) return true;
  const must = (filter.must as Json[] | undefined) ?? [];
  const should = (filter.should as Json[] | undefined) ?? [];
  const mustNot = (filter.must_not as Json[] | undefined) ?? [];
  const list = (c: Json | Json[]) => (Array.isArray(c) ? c : [c]);
  return (
    list(must).every((c) => condition(point, c)) &&
    (list(should).length === 0 || list(should).some((c) => condition(point, c))) &&
    !list(mustNot).some((c) => condition(point, c))
  );
}

function condition(point: Point, c: Json): boolean {
  if ("must" in c || "should" in c || "must_not" in c) return matches(point, c);
  if ("has_id" in c) return (c.has_id as (string | number)[]).map(idKey).includes(idKey(point.id));
  if ("is_empty" in c) {
    const value = point.payload[(c.is_empty as { key: string }).key];
    return value === undefined || value === null || (Array.isArray(value) && value.length === 0);
  }
  if ("is_null" in c) return point.payload[(c.is_null as { key: string }).key] === null;
  const value = point.payload[c.key as string];
  const values = Array.isArray(value) ? value : [value];
  if (c.match) {
    const m = c.match as Json;
    if ("value" in m) return values.includes(m.value);
    if ("any" in m) return values.some((v) => (m.any as unknown[]).includes(v));
    if ("except" in m) return !values.some((v) => (m.except as unknown[]).includes(v));
  }
  if (c.range) {
    const r = c.range as Record<string, number | string | null>;
    const asNumber = (x: unknown) => (typeof x === "string" ? Date.parse(x) : Number(x));
    return values.some((raw) => {
      if (raw === undefined || raw === null) return false;
      const v = asNumber(raw);
      return (
        (r.gt == null || v > asNumber(r.gt)) &&
        (r.gte == null || v >= asNumber(r.gte)) &&
        (r.lt == null || v < asNumber(r.lt)) &&
        (r.lte == null || v <= asNumber(r.lte))
      );
    });
  }
  throw new Error(`unsupported condition ${JSON.stringify(c)}`);
}

/** A response that is a file, not Qdrant's JSON envelope (snapshot downloads). */
class RawBody {
  constructor(readonly bytes: Buffer) {}
}

class QdrantError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function startFakeQdrant(): Promise<FakeQdrant> {
  const collections = new Map<string, Collection>();
  const requests: QdrantRequest[] = [];
  const violations: string[] = [];
  let version = 0;
  /** Snapshot files by collection and name; their bytes are this server's own serialisation of a collection. */
  const snapshots = new Map<string, Map<string, Buffer>>();

  const collectionOf = (name: string) => {
    const c = collections.get(name);
    if (!c) throw new QdrantError(404, `Not found: Collection \`${name}\` doesn't exist!`);
    return c;
  };

  function idf(c: Collection, using: string, term: number): number {
    let n = 0;
    let total = 0;
    for (const p of c.points.values()) {
      const v = p.vectors[using] as { indices: number[] } | undefined;
      if (!v) continue;
      total++;
      if (v.indices.includes(term)) n++;
    }
    return Math.log(1 + (total - n + 0.5) / (n + 0.5));
  }

  /** One nearest-neighbour query (dense or sparse) over the points passing the filter. */
  function nearest(c: Collection, q: Json, candidates: Point[]): { point: Point; score: number }[] {
    const using = q.using as string | undefined;
    const query = q.query as Vector | undefined;
    if (!using || !query) throw new QdrantError(400, "Wrong input: this server needs `using` and `query`");
    const passing = candidates.filter((p) => matches(p, q.filter as Json));
    let scored: { point: Point; score: number }[];
    if (Array.isArray(query)) {
      const size = c.dense[using];
      if (size === undefined) throw new QdrantError(400, `Wrong input: Not existing vector name error: ${using}`);
      if (query.length !== size) {
        throw new QdrantError(400, `Wrong input: Vector dimension error: expected dim: ${size}, got ${query.length}`);
      }
      const uq = unit(query);
      scored = passing.map((point) => {
        const v = point.vectors[using] as number[];
        return { point, score: v.reduce((s, x, i) => s + x * uq[i]!, 0) };
      });
    } else {
      const params = c.sparse[using];
      if (!params) throw new QdrantError(400, `Wrong input: Not existing vector name error: ${using}`);
      const weights = new Map(query.indices.map((t, i) => [t, query.values[i]!]));
      const factors = new Map(query.indices.map((t) => [t, params.modifier === "idf" ? idf(c, using, t) : 1]));
      scored = passing
        .map((point) => {
          const v = point.vectors[using] as { indices: number[]; values: number[] } | undefined;
          let score = 0;
          let hit = false;
          v?.indices.forEach((t, i) => {
            const w = weights.get(t);
            if (w === undefined) return;
            hit = true;
            score += w * factors.get(t)! * v.values[i]!;
          });
          return { point, score, hit };
        })
        .filter((s) => s.hit);
    }
    return scored.sort((a, b) => b.score - a.score).slice(0, (q.limit as number | undefined) ?? 10);
  }

  function query(c: Collection, body: Json) {
    const all = [...c.points.values()].filter((p) => matches(p, body.filter as Json));
    const limit = (body.limit as number | undefined) ?? 10;
    let ranked: { point: Point; score: number }[];
    const prefetch = body.prefetch ? (Array.isArray(body.prefetch) ? body.prefetch : [body.prefetch]) : [];
    const q = body.query as Json | undefined;
    if (q?.order_by) {
      const { points } = scroll(c, { filter: body.filter, limit, order_by: q.order_by, with_payload: true });
      return {
        points: points.map((p) => ({ ...p, version: c.points.get(idKey(p.id))!.version, score: 0 })),
      };
    }
    if (prefetch.length > 0) {
      const lists = (prefetch as Json[]).map((p) => nearest(c, p, all));
      const rrf = q?.rrf as { k?: number; weights?: number[] } | undefined;
      const k = rrf?.k ?? (q?.fusion === "rrf" || rrf ? 2 : undefined);
      if (rrf?.weights && rrf.weights.length !== prefetch.length) {
        throw new QdrantError(400, "Wrong input: the number of RRF weights must match the number of prefetches");
      }
      if (k === undefined) throw new QdrantError(400, "Wrong input: this server fuses prefetches with rrf only");
      const fused = new Map<string, { point: Point; score: number }>();
      for (const [i, list] of lists.entries()) {
        list.forEach(({ point }, rank) => {
          const entry = fused.get(idKey(point.id)) ?? { point, score: 0 };
          entry.score += (rrf?.weights?.[i] ?? 1) / (k + rank + 1);
          fused.set(idKey(point.id), entry);
        });
      }
      ranked = [...fused.values()].sort((a, b) => b.score - a.score);
    } else {
      ranked = nearest(c, { ...body, limit }, all);
    }
    return {
      points: ranked.slice(0, limit).map(({ point, score }) => ({
        id: point.id,
        version: point.version,
        score,
        ...(body.with_payload ? { payload: point.payload } : {}),
        ...(Array.isArray(body.with_vector)
          ? { vector: Object.fromEntries((body.with_vector as string[]).map((name) => [name, point.vectors[name]])) }
          : {}),
      })),
    };
  }

  function scroll(c: Collection, body: Json) {
    const limit = (body.limit as number | undefined) ?? 10;
    let points = [...c.points.values()].filter((p) => matches(p, body.filter as Json));
    const orderBy = (typeof body.order_by === "string" ? { key: body.order_by } : body.order_by) as
      | { key: string; direction?: string; start_from?: string | number }
      | undefined;
    const record = (p: Point) => ({ id: p.id, ...(body.with_payload === false ? {} : { payload: p.payload }) });
    if (orderBy) {
      const index = c.indexes[orderBy.key] as string | { type: string } | undefined;
      const kind = typeof index === "string" ? index : index?.type;
      if (!kind || !["integer", "float", "datetime"].includes(kind)) {
        throw new QdrantError(400, `Bad request: No range index for \`order_by\` key: \`${orderBy.key}\``);
      }
      const value = (p: Point) => {
        const v = p.payload[orderBy.key];
        return typeof v === "string" ? Date.parse(v) : Number(v);
      };
      const desc = orderBy.direction === "desc";
      if (orderBy.start_from !== undefined) {
        const start = typeof orderBy.start_from === "string" ? Date.parse(orderBy.start_from) : orderBy.start_from;
        points = points.filter((p) => (desc ? value(p) <= start : value(p) >= start));
      }
      points.sort((a, b) => (desc ? value(b) - value(a) : value(a) - value(b)));
      return { points: points.slice(0, limit).map(record), next_page_offset: null };
    }
    points.sort((a, b) => idKey(a.id).localeCompare(idKey(b.id)));
    if (body.offset !== undefined && body.offset !== null) {
      const offset = idKey(body.offset as string);
      points = points.filter((p) => idKey(p.id) >= offset);
    }
    return { points: points.slice(0, limit).map(record), next_page_offset: points[limit]?.id ?? null };
  }

  function upsert(c: Collection, body: Json) {
    const incoming = body.points
      ? (body.points as { id: string | number; vector: Record<string, Vector>; payload?: Json }[])
      : [];
    if (!body.points) throw new QdrantError(400, "Wrong input: this server takes the points list form");
    for (const p of incoming) {
      const vectors: Record<string, Vector> = {};
      for (const [name, v] of Object.entries(p.vector ?? {})) {
        if (Array.isArray(v)) {
          const size = c.dense[name];
          if (size === undefined) throw new QdrantError(400, `Wrong input: Not existing vector name error: ${name}`);
          if (v.length !== size) {
            throw new QdrantError(400, `Wrong input: Vector dimension error: expected dim: ${size}, got ${v.length}`);
          }
          vectors[name] = unit(v);
        } else {
          if (!c.sparse[name]) throw new QdrantError(400, `Wrong input: Not existing vector name error: ${name}`);
          if (new Set(v.indices).size !== v.indices.length || v.indices.length !== v.values.length) {
            throw new QdrantError(400, "Wrong input: sparse vector indices must be unique and match values");
          }
          vectors[name] = v;
        }
      }
      c.points.set(idKey(p.id), { id: normalizeId(p.id), vectors, payload: p.payload ?? {}, version: ++version });
    }
    return { operation_id: version, status: "completed" };
  }

  const serialize = (c: Collection) => Buffer.from(JSON.stringify({ ...c, points: [...c.points.values()] }), "utf8");
  const deserialize = (bytes: Buffer): Collection => {
    const parsed = JSON.parse(bytes.toString("utf8")) as Omit<Collection, "points"> & { points: Point[] };
    return { ...parsed, points: new Map(parsed.points.map((p) => [idKey(p.id), p])) };
  };
  const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

  async function snapshotRoute(
    method: string,
    template: string,
    params: Json,
    query: URLSearchParams,
    form?: FormData,
  ) {
    const name = params.collection_name as string;
    const tail = template.slice(template.indexOf("/snapshots"));
    const own = snapshots.get(name) ?? new Map<string, Buffer>();
    snapshots.set(name, own);
    if (method === "post" && tail === "/snapshots") {
      const bytes = serialize(collectionOf(name));
      const created = new Date().toISOString().slice(0, 19);
      const file = `${name}-${++version}-${created.replace(/[T:]/g, "-")}.snapshot`;
      own.set(file, bytes);
      return { name: file, creation_time: created, size: bytes.length, checksum: sha256(bytes) };
    }
    if (method === "get" && tail === "/snapshots") {
      return [...own].map(([file, bytes]) => ({ name: file, size: bytes.length, checksum: sha256(bytes) }));
    }
    if (method === "post" && tail === "/snapshots/upload") {
      const bytes = Buffer.from(await (form!.get("snapshot") as Blob).arrayBuffer());
      const expected = query.get("checksum");
      if (expected && expected !== sha256(bytes)) {
        throw new QdrantError(
          400,
          `Wrong input: Snapshot checksum mismatch: expected ${expected}, got ${sha256(bytes)}`,
        );
      }
      collections.set(name, deserialize(bytes));
      return true;
    }
    const file = params.snapshot_name as string;
    const bytes = own.get(file);
    if (!bytes) throw new QdrantError(404, `Not found: Snapshot ${file} not found`);
    if (method === "get") return new RawBody(bytes);
    own.delete(file);
    return true;
  }

  function route(method: string, path: string, params: Json, body: Json): unknown {
    const name = params.collection_name as string;
    const tail = path.slice(`/collections/${encodeURIComponent(name ?? "")}`.length);
    if (method === "get" && path === "/") return { title: "qdrant - vector search engine", version: "1.18.0" };
    if (method === "get" && (path === "/healthz" || path === "/readyz")) return undefined;
    if (method === "get" && path === "/collections") {
      return { collections: [...collections.keys()].map((n) => ({ name: n })) };
    }
    if (method === "get" && tail === "/exists") return { exists: collections.has(name) };
    if (method === "put" && tail === "") {
      if (collections.has(name)) throw new QdrantError(409, `Wrong input: Collection \`${name}\` already exists!`);
      const dense = Object.fromEntries(
        Object.entries((body.vectors as Record<string, { size: number }>) ?? {}).map(([k, v]) => [k, v.size]),
      );
      const sparse = (body.sparse_vectors as Record<string, { modifier?: string }>) ?? {};
      collections.set(name, { config: body, dense, sparse, indexes: {}, points: new Map() });
      return true;
    }
    if (method === "delete" && tail === "") return collections.delete(name);
    const c = collectionOf(name);
    if (method === "get" && tail === "") {
      return { status: "green", points_count: c.points.size, config: { params: c.config }, payload_schema: {} };
    }
    if (method === "put" && tail === "/index") {
      c.indexes[body.field_name as string] = body.field_schema;
      return { operation_id: ++version, status: "completed" };
    }
    if (method === "put" && tail === "/points") return upsert(c, body);
    if (method === "post" && tail === "/points/query") return query(c, body);
    if (method === "post" && tail === "/points/query/batch") return (body.searches as Json[]).map((q) => query(c, q));
    if (method === "post" && tail === "/points/scroll") return scroll(c, body);
    if (method === "post" && tail === "/points/count") {
      return { count: [...c.points.values()].filter((p) => matches(p, body.filter as Json)).length };
    }
    if (method === "post" && tail === "/points/delete") {
      if (!body.filter && !body.points) throw new QdrantError(400, "Wrong input: points selector required");
      for (const [key, p] of c.points) {
        const selected = body.filter
          ? matches(p, body.filter as Json)
          : (body.points as (string | number)[]).map(idKey).includes(key);
        if (selected) c.points.delete(key);
      }
      return { operation_id: ++version, status: "completed" };
    }
    throw new QdrantError(404, `this test server does not implement ${method.toUpperCase()} ${path}`);
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const started = process.hrtime.bigint();
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? "/", "http://qdrant");
    const method = (req.method ?? "GET").toLowerCase();
    const send = (status: number, payload: Json) => {
      const time = Number(process.hrtime.bigint() - started) / 1e9;
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify({ ...payload, time }));
    };
    let body: Json | undefined;
    let form: FormData | undefined;
    const contentType = req.headers["content-type"] ?? "";
    try {
      if (contentType.startsWith("multipart/form-data")) {
        form = await new Response(Buffer.concat(chunks), { headers: { "content-type": contentType } }).formData();
      } else {
        body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString("utf8")) as Json) : undefined;
      }
    } catch {
      violations.push(`${method.toUpperCase()} ${url.pathname}: body is not JSON`);
      send(400, { status: { error: "Format error in JSON body" } });
      return;
    }
    requests.push({ method, path: url.pathname, body });
    const found = findOperation(method, url.pathname);
    if (!found) {
      violations.push(`${method.toUpperCase()} ${url.pathname}: no such operation in the OpenAPI document`);
      send(404, { status: { error: "Not found" } });
      return;
    }
    const problems = validateQuery(found.op, url.searchParams);
    const schema = found.op.requestBody?.content["application/json"]?.schema;
    if (schema && body !== undefined) {
      const validate = bodyValidator(schema);
      if (!validate(body)) {
        problems.push(
          ...(validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`),
        );
      }
    } else if (body !== undefined && Object.keys(body).length > 0) {
      // The official client sends `{}` to operations without a body (create snapshot); Qdrant ignores it.
      problems.push("the operation takes no body");
    }
    if (form && !found.op.requestBody?.content["multipart/form-data"]) problems.push("the operation takes no form");
    if (form && !(form.get("snapshot") instanceof Blob)) problems.push("the form has no snapshot file");
    if (problems.length > 0) {
      violations.push(`${method.toUpperCase()} ${found.template}: ${problems.join("; ")} in ${JSON.stringify(body)}`);
      send(400, { status: { error: `Format error: ${problems[0]}` } });
      return;
    }
    try {
      const result = found.template.includes("/snapshots")
        ? await snapshotRoute(method, found.template, found.params, url.searchParams, form)
        : route(method, url.pathname, found.params, body ?? {});
      if (result instanceof RawBody) {
        res.writeHead(200, { "content-type": "application/octet-stream", "content-length": result.bytes.length });
        res.end(result.bytes);
        return;
      }
      if (url.pathname === "/") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(result));
        return;
      }
      send(200, { result: result ?? null, status: "ok" });
    } catch (error) {
      if (error instanceof QdrantError) send(error.status, { status: { error: error.message } });
      else send(500, { status: { error: String(error) } });
    }
  }

  let server: Server = createServer((req, res) => void handle(req, res));
  const sockets = new Set<import("node:net").Socket>();
  const track = (s: Server) =>
    s.on("connection", (socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    });
  track(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const stop = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    violations,
    collections,
    payloads: (name) => [...(collections.get(name)?.points.values() ?? [])].map((p) => p.payload),
    stop,
    restart: async () => {
      server = createServer((req, res) => void handle(req, res));
      track(server);
      await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    },
    close: stop,
  };
}
