import { readFileSync } from "node:fs";
import { join } from "node:path";
import { baseUrlVariable, loadConfig } from "../../src/config";
import { envSchema } from "../../src/config/env";

describe(".env.example", () => {
  test("When compared with the config schema, then it documents exactly the variables Perpetual reads", () => {
    // The last section lists what only docker-compose.yml reads; tests/component/deployment.test.ts checks it.
    const text = readFileSync(join(__dirname, "..", "..", ".env.example"), "utf8").split("# --- Deployment")[0]!;
    const documented = [...text.matchAll(/^([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]).sort();
    const providerOverrides = [...loadConfig({}).providers.keys()].map(baseUrlVariable);
    expect(documented).toEqual([...Object.keys(envSchema.shape), ...providerOverrides].sort());
  });
});
