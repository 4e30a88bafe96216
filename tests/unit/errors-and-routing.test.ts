import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import express, { type RequestHandler } from "express";
import { z } from "zod";
import type { ProviderSettings } from "../../src/config";
import { DatabaseUnavailableError } from "../../src/db";
import {
  ApiError,
  AuthenticationError,
  InternalServerError,
  NotFoundError,
  PaymentRequiredError,
  RateLimitedError,
  ServiceUnavailableError,
} from "../../src/errors";
import { ApiRouter, type Guards } from "../../src/http/api-router";
import { anthropicErrorBody, errorHandler, notFoundHandler, toApiError } from "../../src/http/error-handler";
import { SseWriter } from "../../src/http/sse";
import { formatReset } from "../../src/limits";
import { routeModel, UpstreamError, withWireText } from "../../src/providers";
import { idParams } from "../../src/validation";
import { captureLogger } from "../helpers/logs";

async function serve(app: express.Express): Promise<{ url: string; close: () => void }> {
  const server: Server = createServer(app).listen(0, "127.0.0.1");
  await once(server, "listening");
  const close = () => {
    server.closeAllConnections();
    server.close();
  };
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close };
}

type ErrorBody = { error: Record<string, unknown> };

describe("Errors: one mapping from anything thrown to what the client sees", () => {
  const { logger, text } = captureLogger();

  test.each([
    [
      "an invalid-request error",
      new NotFoundError("No such thing.", { code: "thing_not_found" }),
      404,
      "thing_not_found",
    ],
    ["a missing key", new AuthenticationError("Who are you?"), 401, "invalid_api_key"],
    ["a spent plan", new PaymentRequiredError("Balance used up."), 402, "insufficient_quota"],
    ["our own limit", new RateLimitedError("Slow down.", { kind: "tokens" }), 429, "rate_limit_exceeded"],
    ["a database outage", new DatabaseUnavailableError(new Error("Connection terminated")), 503, "service_unavailable"],
    [
      "a provider's 401",
      new UpstreamError("openai", 401, "Incorrect API key", { code: "invalid_api_key" }),
      401,
      "invalid_api_key",
    ],
    ["a provider's 429", new UpstreamError("openai", 429, "Busy", { retryAfter: "7" }), 429, "rate_limit_exceeded"],
    ["a provider's 500", new UpstreamError("openai", 500, "Boom"), 502, "upstream_error"],
    [
      "a provider timeout",
      new UpstreamError("openai", 0, "Timed out", { code: "upstream_timeout" }),
      504,
      "upstream_timeout",
    ],
    ["a malformed path", new URIError("URI malformed"), 400, "invalid_path"],
    [
      "a body-parser failure",
      Object.assign(new Error("bad json"), { type: "entity.parse.failed" }),
      400,
      "invalid_json",
    ],
    [
      "a body too large",
      Object.assign(new Error("big"), { type: "entity.too.large", limit: 10 }),
      413,
      "request_too_large",
    ],
    ["a bug", new TypeError("x is undefined at secret.ts:12"), 500, "internal_error"],
  ])("When %s is thrown, then the client gets its status and code in OpenAI's shape", (_what, error, status, code) => {
    const mapped = toApiError(error, logger);
    expect(mapped).toBeInstanceOf(ApiError);
    expect(mapped.status).toBe(status);
    expect(mapped.toBody()).toEqual({
      error: { message: expect.any(String), type: expect.any(String), param: mapped.param, code },
    });
  });

  test("When a bug is mapped, then the message carries no internals and the log keeps them", () => {
    const mapped = toApiError(new TypeError("x is undefined at secret.ts:12"), logger);
    expect(mapped).toBeInstanceOf(InternalServerError);
    expect(mapped.message).not.toContain("secret.ts");
    expect(text()).toContain("secret.ts");
  });

  test("When the database layer reports an outage, then the client gets a 503 and the driver's words stay in the log", () => {
    const mapped = toApiError(new DatabaseUnavailableError(new Error("Connection terminated unexpectedly")), logger);
    expect(mapped).toBeInstanceOf(ServiceUnavailableError);
    expect(mapped.message).not.toContain("Connection terminated");
  });

  test("When our rate limit or a provider's is mapped, then each keeps its type and retry-after", () => {
    expect(new RateLimitedError("x", { kind: "requests" }).type).toBe("requests");
    const upstream = toApiError(new UpstreamError("groq", 429, "Busy", { retryAfter: "7" }), logger);
    expect(upstream.type).toBe("rate_limit_error");
    expect(upstream.headers["retry-after"]).toBe("7");
    expect(new PaymentRequiredError("x").headers["x-should-retry"]).toBe("false");
  });

  test.each([
    [400, "invalid_request_error"],
    [401, "authentication_error"],
    [402, "billing_error"],
    [403, "permission_error"],
    [404, "not_found_error"],
    [429, "rate_limit_error"],
    [503, "api_error"],
    [504, "timeout_error"],
  ])("When a %i is shown to an Anthropic client, then its type is %s", (status, type) => {
    expect(anthropicErrorBody(new ApiError(status, "m", "t"))).toEqual({
      type: "error",
      error: { type, message: "m" },
    });
  });
});

describe("Routes enforce what they declare", () => {
  const passGuard: RequestHandler = (req, res, next) => {
    if (req.get("authorization") !== "Bearer good") throw new AuthenticationError("Invalid key.");
    res.locals.who = "caller";
    next();
  };
  const deny: RequestHandler = () => {
    throw new Error("not this guard");
  };
  const guards: Guards = { api_key: passGuard, admin: deny, metrics_token: deny, webhook_signature: deny };
  let url: string;
  let close: () => void;
  const seen: unknown[] = [];

  beforeAll(async () => {
    const api = new ApiRouter("Test");
    api.route(
      {
        method: "post",
        path: "/things/:id",
        summary: "s",
        access: "api_key",
        params: idParams("thing"),
        query: z.object({ n: z.coerce.number().int().default(1) }),
        body: z.strictObject({ name: z.string().min(1) }),
        responses: { 200: { description: "ok" } },
      },
      (input, res) => {
        seen.push(input);
        res.json({ ok: true, who: res.locals.who });
      },
    );
    api.route(
      { method: "get", path: "/open", summary: "s", access: "public", responses: { 200: { description: "ok" } } },
      (_input, res) => {
        res.json({ open: true });
      },
    );
    const app = express();
    app.use(express.json());
    app.use(api.build(guards));
    app.use(notFoundHandler);
    app.use(errorHandler(captureLogger().logger, "/messages"));
    ({ url, close } = await serve(app));
  });
  afterAll(() => close());

  const post = (path: string, body: unknown, token = "good") =>
    fetch(`${url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  const ID = "6F9619FF-8B86-4011-B42D-00CF4FC964FF";

  test("When the guard refuses, then the handler never runs, whatever the body", async () => {
    const before = seen.length;
    const res = await post(`/things/${ID}`, { nope: 1 }, "bad");
    expect(res.status).toBe(401);
    expect(seen.length).toBe(before);
  });

  test("When params, query and body are valid, then the handler gets them parsed and typed", async () => {
    const res = await post(`/things/${ID}?n=3`, { name: "x" });
    expect(await res.json()).toEqual({ ok: true, who: "caller" });
    expect(seen.at(-1)).toEqual({ params: { id: ID.toLowerCase() }, query: { n: 3 }, body: { name: "x" } });
  });

  test("When the body or query is wrong, then it is a 400 naming the parameter", async () => {
    const body = (await (await post(`/things/${ID}`, { name: "" })).json()) as ErrorBody;
    expect(body.error).toMatchObject({ param: "name", code: "invalid_value", type: "invalid_request_error" });
    const extra = await post(`/things/${ID}`, { name: "x", admin: true });
    expect(extra.status).toBe(400);
    const query = (await (await post(`/things/${ID}?n=two`, { name: "x" })).json()) as ErrorBody;
    expect(query.error.param).toBe("n");
  });

  test("When a path id is malformed, then it is a 404 like an id that is not the caller's", async () => {
    const res = await post("/things/not-a-uuid", { name: "x" });
    expect(res.status).toBe(404);
    expect(((await res.json()) as ErrorBody).error).toMatchObject({
      code: "thing_not_found",
      message: "No thing found with id 'not-a-uuid'.",
    });
  });

  test("When a route says public, then it needs no credentials", async () => {
    expect(await (await fetch(`${url}/open`)).json()).toEqual({ open: true });
  });

  test("When a route's access has no guard, then building the router fails instead of serving it open", () => {
    const api = new ApiRouter("Test");
    api.route(
      { method: "get", path: "/x", summary: "s", access: "admin", responses: { 200: { description: "ok" } } },
      () => {},
    );
    expect(() => api.build({ api_key: passGuard } as unknown as Guards)).toThrow(/no guard for access 'admin'/);
  });
});

describe("Model routing", () => {
  const provider = (name: string, prefixes: string[]): ProviderSettings => ({
    name,
    kind: "openai-compatible",
    baseUrl: `https://${name}.example`,
    modelPrefixes: prefixes,
  });
  const providers = new Map([
    ["openai", provider("openai", ["gpt-", "o1"])],
    ["groq", provider("groq", ["llama"])],
  ]);
  const models = new Map([["llama-3.3-70b", { provider: "groq", inputPer1M: 0, outputPer1M: 0 }]]) as never;

  test.each([
    ["gpt-4o", "openai", "gpt-4o"],
    ["groq/gpt-oss-120b", "groq", "gpt-oss-120b"],
    ["llama-3.3-70b", "groq", "llama-3.3-70b"],
    ["llama-4", "groq", "llama-4"],
    ["o1-mini", "openai", "o1-mini"],
  ])("When the model is %s, then it goes to %s as %s", (requested, name, model) => {
    const route = routeModel(requested, providers, models);
    expect(route.provider.name).toBe(name);
    expect(route.model).toBe(model);
  });

  test.each(["claude-3", "nobody/gpt-4o", "groq/"])("When the model is %s, then it is 404 model_not_found", (m) => {
    expect(() => routeModel(m, providers, models)).toThrow(
      expect.objectContaining({ status: 404, code: "model_not_found", param: "model" }),
    );
  });
});

describe("Rate-limit reset formatting (x-ratelimit-reset-*)", () => {
  test.each([
    [0, "1s"],
    [1, "1s"],
    [999, "1s"],
    [1_000, "1s"],
    [1_001, "2s"],
    [59_000, "59s"],
    [60_000, "1m0s"],
    [61_500, "1m2s"],
    [3_600_000, "1h0m0s"],
    [86_399_000, "23h59m59s"],
  ])("When %i ms remain, then the header says %s", (ms, expected) => {
    expect(formatReset(ms)).toBe(expected);
  });
});

describe("The SSE writer", () => {
  test("When events are written, then the client reads unbuffered SSE headers, each event whole, then the end", async () => {
    const app = express();
    app.get("/s", async (_req, res) => {
      const sse = new SseWriter(res);
      sse.open();
      await sse.data({ n: 1 });
      await sse.event("message_stop", { type: "message_stop" });
      sse.end("data: [DONE]\n\n");
      expect(sse.closed).toBe(true);
      await sse.data({ n: 2 }); // after the end: ignored, not thrown
    });
    const { url, close } = await serve(app);
    try {
      const res = await fetch(`${url}/s`);
      expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
      expect(res.headers.get("cache-control")).toBe("no-cache, no-transform");
      expect(res.headers.get("x-accel-buffering")).toBe("no");
      expect(await res.text()).toBe(
        'data: {"n":1}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\ndata: [DONE]\n\n',
      );
    } finally {
      close();
    }
  });

  test("When a provider's event is relayed unchanged, then it goes as the provider wrote it", async () => {
    const app = express();
    app.get("/s", async (_req, res) => {
      const sse = new SseWriter(res);
      sse.open();
      await sse.data(withWireText({ id: "c1", usage: null }, '{"id": "c1",  "usage": null}'));
      await sse.data({ ...withWireText({ id: "c2" }, '{"id":  "c2"}'), changed: true }); // a copy: serialized
      sse.end();
    });
    const { url, close } = await serve(app);
    try {
      expect(await (await fetch(`${url}/s`)).text()).toBe(
        'data: {"id": "c1",  "usage": null}\n\ndata: {"id":"c2","changed":true}\n\n',
      );
    } finally {
      close();
    }
  });

  /** Serves one SSE handler at /s, counting its response's socket writes (each one a syscall): `_write`, `_writev`. */
  async function serveSse(handler: (sse: SseWriter) => Promise<void>) {
    let writes = 0;
    const app = express();
    app.get("/s", async (_req, res) => {
      const socket = res.socket as unknown as Record<"_write" | "_writev", (...args: unknown[]) => unknown>;
      for (const method of ["_write", "_writev"] as const) {
        const original = socket[method].bind(socket);
        socket[method] = (...args: unknown[]) => {
          writes++;
          return original(...args);
        };
      }
      await handler(new SseWriter(res));
    });
    return { ...(await serve(app)), writes: () => writes };
  }

  test("When several events arrive together, then the headers and the events leave in one socket write", async () => {
    // As the relay reads a provider's answer: its headers and several events parsed from the one packet.
    async function* onePacket() {
      for (let n = 0; n < 5; n++) yield { n };
    }
    const { url, close, writes } = await serveSse(async (sse) => {
      sse.open();
      for await (const event of onePacket()) await sse.data(event);
      sse.end("data: [DONE]\n\n");
    });
    try {
      const res = await fetch(`${url}/s`);
      expect(res.headers.get("content-type")).toMatch(/text\/event-stream/);
      expect(await res.text()).toBe(`${[0, 1, 2, 3, 4].map((n) => `data: {"n":${n}}\n\n`).join("")}data: [DONE]\n\n`);
      expect(writes()).toBe(1);
    } finally {
      close();
    }
  });

  test("When events come in separate turns, then each turn's events are sent before the next turn waits", async () => {
    let release = () => {};
    const later = new Promise<void>((resolve) => {
      release = resolve;
    });
    const { url, close, writes } = await serveSse(async (sse) => {
      sse.open();
      await sse.data({ n: 1 });
      await later; // the next event waits on I/O (the provider): the first must already be on its way
      await sse.event("named", { n: 2 });
      sse.end();
    });
    try {
      const reader = (await fetch(`${url}/s`)).body!.getReader();
      const decoder = new TextDecoder();
      expect(decoder.decode((await reader.read()).value)).toBe('data: {"n":1}\n\n');
      release();
      let rest = "";
      for (let piece = await reader.read(); !piece.done; piece = await reader.read())
        rest += decoder.decode(piece.value);
      expect(rest).toBe('event: named\ndata: {"n":2}\n\n');
      expect(writes()).toBe(2);
    } finally {
      close();
    }
  });

  test("When the client stops reading, then writes wait for it (back-pressure) and end once it is gone", async () => {
    let writes = 0;
    let settled!: () => void;
    const finished = new Promise<void>((r) => {
      settled = r;
    });
    const app = express();
    app.get("/s", async (_req, res) => {
      const sse = new SseWriter(res);
      sse.open();
      const big = "x".repeat(64 * 1024);
      while (!sse.closed && writes < 10_000) {
        await sse.data({ big });
        writes++;
      }
      settled();
    });
    const { url, close } = await serve(app);
    try {
      const controller = new AbortController();
      const res = await fetch(`${url}/s`, { signal: controller.signal });
      const reader = res.body!.getReader();
      await reader.read();
      // Not reading on: the writer must be parked on 'drain' after a few socket buffers, not filling memory.
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      expect(writes).toBeLessThan(100);
      controller.abort();
      await finished;
      expect(writes).toBeLessThan(10_000);
    } finally {
      close();
    }
  });
});
