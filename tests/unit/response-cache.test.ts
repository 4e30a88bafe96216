import { cacheable, ResponseCache } from "../../src/cache/response-cache";
import type { ChatCompletion } from "../../src/providers";

const completion = (text: string) =>
  ({
    id: "c",
    object: "chat.completion",
    created: 1,
    model: "gpt-4o",
    choices: [
      { index: 0, message: { role: "assistant", content: text, refusal: null }, finish_reason: "stop", logprobs: null },
    ],
  }) as ChatCompletion;

const body = (content: string, extra: Record<string, unknown> = {}) => ({
  model: "gpt-4o",
  temperature: 0,
  messages: [{ role: "user", content }],
  ...extra,
});

describe("ResponseCache", () => {
  let now = 1_000_000; // lru-cache reads a start time of 0 as "no TTL"
  const cache = () =>
    new ResponseCache({ ttlMs: 60_000, maxBytes: 1024 * 1024, similarity: 0.95, sameWords: true }, () => now);

  test("When the TTL passes (injected clock), then the entry is gone", () => {
    const c = cache();
    const keys = c.keysOf("u1", body("hello"));
    c.put(keys, { completion: completion("hi"), costUsd: 0.01, provider: "openai" });
    now += 59_000;
    expect(c.exact(keys.exact)?.completion.choices[0]?.message.content).toBe("hi");
    now += 2_000;
    expect(c.exact(keys.exact)).toBeUndefined();
  });

  test("When users, models, parameters or transport fields differ, then keys differ only where the answer could", () => {
    const c = cache();
    const key = (user: string, b: Record<string, unknown>) => c.keysOf(user, b).exact;
    expect(key("u1", body("x"))).not.toBe(key("u2", body("x")));
    expect(key("u1", body("x"))).not.toBe(key("u1", body("x", { model: "gpt-4o-mini" })));
    expect(key("u1", body("x"))).not.toBe(key("u1", body("x", { max_tokens: 5 })));
    expect(key("u1", body("x"))).toBe(key("u1", body("x", { stream: true, user: "someone", metadata: { a: "b" } })));
    expect(key("u1", { temperature: 0, model: "gpt-4o", messages: [{ content: "x", role: "user" }] })).toBe(
      key("u1", body("x")),
    );
  });

  test("When a user's cache is cleared, then nothing cached before is found, and other users keep theirs", () => {
    const c = cache();
    const mine = c.keysOf("u1", body("hello"));
    const theirs = c.keysOf("u2", body("hello"));
    c.put(mine, { completion: completion("a"), costUsd: 0, provider: "openai" });
    c.put(theirs, { completion: completion("b"), costUsd: 0, provider: "openai" });
    c.clearUser("u1");
    expect(c.exact(c.keysOf("u1", body("hello")).exact)).toBeUndefined();
    expect(c.similar(c.keysOf("u1", body("hello")))).toBeUndefined();
    expect(c.exact(c.keysOf("u2", body("hello")).exact)?.completion.choices[0]?.message.content).toBe("b");
  });

  test("When an answer is larger than a sixteenth of the cache, then it is not kept", () => {
    const c = new ResponseCache({ ttlMs: 60_000, maxBytes: 16 * 1024, similarity: 0.95, sameWords: true });
    const keys = c.keysOf("u1", body("essay"));
    c.put(keys, { completion: completion("x".repeat(2_000)), costUsd: 0, provider: "openai" });
    expect(c.exact(keys.exact)).toBeUndefined();
  });

  test("Only deterministic single-choice requests are cacheable unless forced", () => {
    expect(cacheable({ temperature: 0 }, false)).toBe(true);
    expect(cacheable({}, false)).toBe(false);
    expect(cacheable({ temperature: 0.7 }, true)).toBe(true);
    expect(cacheable({ temperature: 0, n: 2 }, true)).toBe(false);
  });
});
