import { jsonTextOf } from "../../src/providers";
import { parseWire } from "../../src/providers/wire";

describe("Provider answers passed on as written", () => {
  const text = '{ "id": "chatcmpl-1",  "object": "chat.completion", "choices": [], "x_vendor": {"b": 1, "a": 2} }';

  test("When an answer comes back unchanged, then its JSON text is the provider's, byte for byte", async () => {
    const parsed = await parseWire<Record<string, unknown>>(text);
    expect(parsed.id).toBe("chatcmpl-1");
    expect(jsonTextOf(parsed)).toBe(text);
  });

  test("When an answer is rebuilt on the way, then it is serialized from the new object", async () => {
    const parsed = await parseWire<Record<string, unknown>>(text);
    const rebuilt = { ...parsed, id: "other" };
    expect(JSON.parse(jsonTextOf(rebuilt))).toEqual({ ...JSON.parse(text), id: "other" });
  });

  test("When the provider's text is not JSON, then parsing fails as JSON.parse does", async () => {
    await expect(parseWire("{truncated")).rejects.toBeInstanceOf(SyntaxError);
  });
});
