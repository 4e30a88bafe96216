import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * An OpenTelemetry collector's OTLP/HTTP traces receiver (`POST /v1/traces`), JSON encoding as the spec defines it:
 * ExportTraceServiceRequest in, ExportTraceServiceResponse (`{}`) out; 415 for other encodings, 404 elsewhere.
 */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  /** 1 internal, 2 server, 3 client. */
  kind: number;
  attributes: Record<string, string | number | boolean>;
  serviceName: string;
}

export interface FakeCollector {
  url: string;
  spans: ReceivedSpan[];
  /** Request headers of every export (to check the configured ones arrive). */
  exportHeaders: Record<string, string | string[] | undefined>[];
  close(): Promise<void>;
}

type AnyValue = { stringValue?: string; intValue?: number | string; boolValue?: boolean; doubleValue?: number };
type KeyValue = { key: string; value: AnyValue };

const plainValue = (v: AnyValue) =>
  v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue ?? ""));
const attributesOf = (list: KeyValue[] = []) => Object.fromEntries(list.map((a) => [a.key, plainValue(a.value)]));

export async function startFakeCollector(): Promise<FakeCollector> {
  const spans: ReceivedSpan[] = [];
  const exportHeaders: FakeCollector["exportHeaders"] = [];
  const server = createServer(async (req, res) => {
    let text = "";
    for await (const chunk of req) text += chunk;
    if (req.method !== "POST" || req.url !== "/v1/traces") {
      res.writeHead(404).end();
      return;
    }
    if (!String(req.headers["content-type"]).startsWith("application/json")) {
      res.writeHead(415, { "content-type": "text/plain" }).end("only JSON encoding here");
      return;
    }
    exportHeaders.push(req.headers);
    const body = JSON.parse(text) as {
      resourceSpans: {
        resource: { attributes: KeyValue[] };
        scopeSpans: { spans: (ReceivedSpan & { attributes: KeyValue[] })[] }[];
      }[];
    };
    for (const resourceSpans of body.resourceSpans) {
      const serviceName = String(attributesOf(resourceSpans.resource.attributes)["service.name"]);
      for (const scope of resourceSpans.scopeSpans) {
        for (const span of scope.spans) spans.push({ ...span, attributes: attributesOf(span.attributes), serviceName });
      }
    }
    res.writeHead(200, { "content-type": "application/json" }).end("{}");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    exportHeaders,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
