import type { AddressInfo } from "node:net";
import express from "express";
import { jsonBodies } from "../../src/http/json-body";
import { OFF_THREAD_BYTES, parseJson } from "../../src/json/parse";
import { jsonTextOf } from "../../src/providers";
import { parseWire } from "../../src/providers/wire";

/** A chat body past the off-thread size: one long message among small fields. */
const large = () => ({
  model: "gpt-4o",
  messages: [{ role: "user", content: "é🙂 ".repeat(OFF_THREAD_BYTES / 2) }],
  n: 1,
});

describe("JSON parsed off the event loop", () => {
  test("When a text is past the off-thread size, then the value is JSON.parse's, from a string or from bytes", async () => {
    const text = JSON.stringify(large());
    expect(text.length).toBeGreaterThan(OFF_THREAD_BYTES);
    expect(await parseJson(text)).toEqual(JSON.parse(text));
    expect(await parseJson(Buffer.from(text))).toEqual(JSON.parse(text));
    expect(await parseJson(Buffer.from(`\ufeff${text}`, "utf16le"), "utf-16le")).toEqual(JSON.parse(text));
  });

  test("When a large or small text is not JSON, then the promise rejects with a SyntaxError", async () => {
    const truncated = JSON.stringify(large()).slice(0, -2);
    await expect(parseJson(truncated)).rejects.toBeInstanceOf(SyntaxError);
    await expect(parseJson("{truncated")).rejects.toBeInstanceOf(SyntaxError);
    // The thread survives a failure: the next parse is answered.
    expect(await parseJson(JSON.stringify(large()))).toMatchObject({ n: 1 });
  });

  test("When many large texts are parsed at once, then each promise gets its own value", async () => {
    const texts = Array.from({ length: 6 }, (_, i) => JSON.stringify({ ...large(), n: i }));
    const values = await Promise.all(texts.map((t) => parseJson(t)));
    expect(values.map((v) => (v as { n: number }).n)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  test("When a provider's large answer is parsed, then its own text is kept for sending it on", async () => {
    const text = ` ${JSON.stringify({ id: "chatcmpl-1", choices: [{ message: large().messages[0] }] })} `;
    const parsed = await parseWire<{ id: string }>(text);
    expect(parsed.id).toBe("chatcmpl-1");
    expect(jsonTextOf(parsed)).toBe(text);
  });
});

describe("JSON request bodies", () => {
  let base: string;
  let close: () => void;

  beforeAll(async () => {
    const app = express();
    // An earlier parser that takes one route's raw bytes (as the billing webhook's does) is left alone.
    app.use("/raw", express.raw({ type: () => true }));
    app.use(jsonBodies(8 << 20));
    app.post(["/echo", "/raw"], (req, res) => {
      res.json({ buffer: Buffer.isBuffer(req.body), body: Buffer.isBuffer(req.body) ? null : req.body });
    });
    app.use(
      (error: { type?: string; status?: number }, _req: express.Request, res: express.Response, _next: unknown) => {
        res.status(error.status ?? 500).json({ type: error.type });
      },
    );
    const server = app.listen(0);
    await new Promise((resolve) => server.once("listening", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () => server.close();
  });
  afterAll(() => close());

  const post = (path: string, body: string | Buffer, contentType = "application/json") =>
    fetch(`${base}${path}`, { method: "POST", headers: { "content-type": contentType }, body }).then(async (r) => ({
      status: r.status,
      json: (await r.json()) as Record<string, unknown>,
    }));

  test("When a body is small or past the off-thread size, then the handler gets the same value", async () => {
    for (const body of [{ model: "gpt-4o", messages: [] }, large()]) {
      expect(await post("/echo", JSON.stringify(body))).toEqual({ status: 200, json: { buffer: false, body } });
    }
  });

  test("When a body is broken, a bare scalar, in an unsupported charset or empty, then body-parser's answers come back", async () => {
    expect(await post("/echo", JSON.stringify(large()).slice(0, -1))).toEqual({
      status: 400,
      json: { type: "entity.parse.failed" },
    });
    expect(await post("/echo", "42")).toEqual({ status: 400, json: { type: "entity.parse.failed" } });
    expect(await post("/echo", "{}", "application/json; charset=latin1")).toEqual({
      status: 415,
      json: { type: "charset.unsupported" },
    });
    const utf16 = await post("/echo", Buffer.from('{"a":"é"}', "utf16le"), "application/json; charset=utf-16le");
    expect(utf16).toEqual({ status: 200, json: { buffer: false, body: { a: "é" } } });
    expect((await post("/echo", "")).status).toBe(200);
  });

  test("When a body is over the limit, then 413 entity.too.large; when a route took the raw bytes, they stay raw", async () => {
    expect(await post("/echo", `{"a":"${"x".repeat(9 << 20)}"}`)).toEqual({
      status: 413,
      json: { type: "entity.too.large" },
    });
    expect(await post("/raw", '{"a":1}')).toEqual({ status: 200, json: { buffer: true, body: null } });
  });
});
