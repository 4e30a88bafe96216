import { storableJson, storableText } from "../../src/db/text";

describe("Storable JSON for jsonb parameters", () => {
  test("When nothing needs cleaning, then the JSON is JSON.stringify's, pairs and escaped backslashes included", () => {
    const value = { a: "plain", emoji: "ok 😀", nested: [{ path: "C:\\u0000dir" }, 3, null], quote: 'say "hi"' };
    expect(JSON.parse(storableJson(value))).toEqual(value);
    expect(storableJson({ a: "plain", n: [1, 2] })).toBe(JSON.stringify({ a: "plain", n: [1, 2] }));
  });

  test("When strings anywhere hold NUL or unpaired surrogates, then each is replaced by U+FFFD and nothing else changes", () => {
    const value = { model: "gpt\u0000-4o\ud800", messages: [{ content: "nul \u0000 here, lone \udc00 there 😀" }] };
    const stored = JSON.parse(storableJson(value));
    expect(stored).toEqual({
      model: "gpt\uFFFD-4o\uFFFD",
      messages: [{ content: "nul \uFFFD here, lone \uFFFD there 😀" }],
    });
    expect(storableText("fine 😀")).toBe("fine 😀");
  });
});
