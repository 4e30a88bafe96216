import { RefreshingCache } from "../../src/cache/refreshing-cache";

/** A load whose completion the test controls, counting its calls. */
function controlledLoad<V>() {
  const pending: Array<{ resolve: (v: { value: V; validUntil?: number }) => void; reject: (e: Error) => void }> = [];
  const load = jest.fn(
    () =>
      new Promise<{ value: V; validUntil?: number }>((resolve, reject) => {
        pending.push({ resolve, reject });
      }),
  );
  return { load, pending };
}

const settle = () => new Promise((r) => setImmediate(r));

describe("RefreshingCache", () => {
  let now: number;
  let cache: RefreshingCache<string>;
  beforeEach(() => {
    now = 1_000_000;
    cache = new RefreshingCache<string>({ max: 100, ttlMs: 5_000, staleMs: 5_000, now: () => now });
  });

  test("When 500 callers miss the same key at once, then one load runs and all get its value", async () => {
    const { load, pending } = controlledLoad<string>();
    const results = Promise.all(Array.from({ length: 500 }, () => cache.get("k", load)));
    await settle();
    expect(load).toHaveBeenCalledTimes(1);
    pending[0]!.resolve({ value: "v1" });
    expect(new Set(await results)).toEqual(new Set(["v1"]));
  });

  test("When an entry is past its TTL, then 500 callers get the old value at once while one refresh runs", async () => {
    const { load, pending } = controlledLoad<string>();
    const first = cache.get("k", load);
    pending[0]!.resolve({ value: "v1" });
    await first;
    now += 5_001;
    const during = await Promise.all(Array.from({ length: 500 }, () => cache.get("k", load)));
    expect(new Set(during)).toEqual(new Set(["v1"]));
    expect(load).toHaveBeenCalledTimes(2);
    pending[1]!.resolve({ value: "v2" });
    await settle();
    expect(await cache.get("k", load)).toBe("v2");
    expect(load).toHaveBeenCalledTimes(2);
  });

  test("When the entry is past its stale window, or its refresh failed, then callers wait for a fresh load", async () => {
    const { load, pending } = controlledLoad<string>();
    const first = cache.get("k", load);
    pending[0]!.resolve({ value: "v1" });
    await first;
    now += 5_001;
    await cache.get("k", load); // served stale; refresh 1 starts
    pending[1]!.reject(new Error("database away"));
    await settle();
    const waiting = cache.get("k", load);
    await settle();
    expect(load).toHaveBeenCalledTimes(3);
    pending[2]!.reject(new Error("database away"));
    await expect(waiting).rejects.toThrow("database away");

    const again = cache.get("k", load);
    pending[3]!.resolve({ value: "v3" });
    await again;
    now += 10_001; // beyond fresh + stale
    const late = cache.get("k", load);
    await settle();
    expect(load).toHaveBeenCalledTimes(5);
    pending[4]!.resolve({ value: "v4" });
    expect(await late).toBe("v4");
  });

  test("When a value is valid only briefly, then it is never served past that moment", async () => {
    const { load, pending } = controlledLoad<string>();
    const first = cache.get("k", load);
    pending[0]!.resolve({ value: "expiring", validUntil: now + 1_000 });
    await first;
    now += 1_001;
    const next = cache.get("k", load);
    await settle();
    expect(load).toHaveBeenCalledTimes(2);
    pending[1]!.resolve({ value: "renewed" });
    expect(await next).toBe("renewed");
  });

  test("When an entry is dropped while its load runs, then that load's answer is not kept", async () => {
    const { load, pending } = controlledLoad<string>();
    const first = cache.get("k", load);
    cache.deleteWhere((_v, key) => key === "k");
    pending[0]!.resolve({ value: "before revocation" });
    await first;
    const next = cache.get("k", load);
    await settle();
    expect(load).toHaveBeenCalledTimes(2);
    pending[1]!.resolve({ value: "after revocation" });
    expect(await next).toBe("after revocation");
  });

  test("When more keys arrive than its bound, then the least recently used go", async () => {
    const small = new RefreshingCache<string>({ max: 3, ttlMs: 5_000, staleMs: 0, now: () => now });
    const load = jest.fn(async () => ({ value: "v" }));
    for (const key of ["a", "b", "c", "d"]) await small.get(key, load);
    await small.get("a", load);
    expect(load).toHaveBeenCalledTimes(5);
  });
});
