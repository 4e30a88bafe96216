import { jsonBody } from "../../src/providers/json-body";

const text = async (body: unknown) => {
  const out = await jsonBody(body);
  return typeof out === "string" ? out : out.toString("utf8");
};

describe("Provider request bodies as JSON", () => {
  test("When a body is ordinary, then it is JSON.stringify's string", async () => {
    const body = { model: "gpt-4o", messages: [{ role: "user", content: "hi" }], stream: undefined, n: 1 };
    expect(await jsonBody(body)).toBe(JSON.stringify(body));
  });

  test("When a body holds megabytes of text with escapes and emoji across slice edges, then the bytes are JSON.stringify's", async () => {
    // 512 Ki UTF-16 units puts a surrogate pair across the first slice edge; quotes, newlines, NUL and a lone
    // surrogate need escapes.
    const pasted = `${"a".repeat(512 * 1024 - 1)}😀 "quoted"\n\u0000 \ud800 tail ${"é".repeat(700_000)}`;
    const body = {
      model: "gpt-4o",
      messages: [
        { role: "system", content: "memory" },
        { role: "user", content: [{ type: "text", text: pasted }] },
        { role: "user", content: pasted.slice(0, 300_000) },
      ],
      skipped: undefined,
    };
    const out = await jsonBody(body);
    expect(Buffer.isBuffer(out)).toBe(true);
    expect(await text(body)).toBe(JSON.stringify(body));
  });

  test("When a client's text contains what looks like a placeholder, then it is sent as written", async () => {
    const sneaky = `${"b".repeat(300_000)}\u0000deadbeefdeadbeef:0\u0000`;
    const body = {
      messages: [
        { role: "user", content: sneaky },
        { role: "user", content: "\u0000x:0\u0000" },
      ],
    };
    expect(JSON.parse(await text(body))).toEqual(body);
  });

  test("When a long body is serialized, then other work runs between its slices", async () => {
    // Another task that runs once per turn of the event loop: it runs between the slices only if they yield.
    let turns = 0;
    let done = false;
    const other = () => {
      turns++;
      if (!done) setImmediate(other);
    };
    setImmediate(other);
    await jsonBody({ content: "z".repeat(8 * 1024 * 1024) });
    done = true;
    expect(turns).toBeGreaterThanOrEqual(8); // 16 slices of 512 Ki
    expect(await jsonBody({ content: "z".repeat(1000) })).toBe(JSON.stringify({ content: "z".repeat(1000) }));
  });
});
