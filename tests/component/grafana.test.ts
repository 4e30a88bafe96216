import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type Database, migrate, openPglite } from "../../src/db";
import { startTestApp, type TestApp } from "../helpers/app";

interface Panel {
  title: string;
  targets: Array<{ expr: string }>;
}

describe("Grafana dashboard", () => {
  let db: Database;
  let app: TestApp;
  let exported: Set<string>;

  beforeAll(async () => {
    db = await openPglite();
    await migrate(db);
    app = await startTestApp({ db });
    const text = await (await fetch(`${app.baseUrl}/metrics`)).text();
    exported = new Set(
      [...text.matchAll(/^# TYPE (\S+) (\S+)/gm)].flatMap(([, name, type]) =>
        type === "histogram" ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name!],
      ),
    );
  });
  afterAll(async () => {
    await app.close();
    await db.close();
  });

  test("When every panel query is read, then each metric it names is one the server exports", () => {
    const dashboard = JSON.parse(
      readFileSync(join(__dirname, "..", "..", "config", "grafana", "perpetual-dashboard.json"), "utf8"),
    ) as {
      panels: Panel[];
    };
    const titles = dashboard.panels.map((p) => p.title.toLowerCase()).join(" | ");
    for (const topic of ["request rate", "latency", "tokens", "cost", "errors", "retrievals", "rejections"])
      expect(titles).toContain(topic);
    for (const panel of dashboard.panels) {
      for (const { expr } of panel.targets) {
        const names = expr.match(/\bperpetual_[a-z_]+/g) ?? [];
        expect(names.length).toBeGreaterThan(0);
        for (const name of names) expect([panel.title, name, exported.has(name)]).toEqual([panel.title, name, true]);
      }
    }
  });
});
