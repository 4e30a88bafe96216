import { UptimeHistory } from "../../src/http/uptime";

describe("Uptime over the last 24 hours", () => {
  const HOUR = 3_600_000;

  test("When checks find a component down part of the time, then its percentage is the share of checks that found it up, over a sliding day", () => {
    let now = Date.UTC(2026, 10, 30, 12);
    const history = new UptimeHistory(() => now);
    // 20 hours up, 4 hours down, checked every half hour; Redis is not configured and does not count.
    for (let i = 0; i < 48; i++) {
      history.record({ api: "operational", database: i < 40 ? "operational" : "down", redis: "not configured" });
      now += HOUR / 2;
    }
    now -= HOUR / 2;
    expect(history.percentages()).toEqual({ api: 100, database: 83.33, redis: null });
    expect(history.windowSeconds()).toBe(47 * 1_800);

    // Twelve hours later, with the database back, the oldest checks have left the window.
    for (let i = 0; i < 24; i++) {
      now += HOUR / 2;
      history.record({ api: "operational", database: "operational", redis: "not configured" });
    }
    // The window (t+11.5 h to t+35.5 h) holds 25 of the first checks, 8 of them down, and the 24 new ones.
    expect(history.percentages().database).toBe(Math.round((41 / 49) * 10_000) / 100);
    expect(history.windowSeconds()).toBeLessThanOrEqual(24 * 3_600);
  });

  test("When nothing has been checked yet, then there are no figures and no window", () => {
    const history = new UptimeHistory(() => 0);
    expect(history.percentages()).toEqual({});
    expect(history.windowSeconds()).toBe(0);
  });
});
