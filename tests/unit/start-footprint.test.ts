import { execFileSync } from "node:child_process";
import { join } from "node:path";

const ROOT = join(__dirname, "..", "..");

// Resident memory is part of the product (docs/PROXY.md): SDKs only some deployments use are loaded where configured.
describe("What the server loads at start", () => {
  test("When the application is loaded, then the Polar, OpenAI and Qdrant SDKs are not (loaded where configured)", () => {
    const script = `
      require("./src/start.ts");
      const loaded = new Set();
      for (const file of Object.keys(require.cache)) {
        const m = /node_modules\\/((@[^/]+\\/)?[^/]+)\\/(.*)/.exec(file);
        if (m) loaded.add(m[1] + (m[1] === "@polar-sh/sdk" && !m[3].startsWith("dist/commonjs/models/errors/") ? ":sdk" : ""));
      }
      process.stdout.write(JSON.stringify([...loaded]));`;
    const out = execFileSync(process.execPath, ["--require", "tsx/cjs", "-e", script], { cwd: ROOT, encoding: "utf8" });
    const loaded: string[] = JSON.parse(out);
    expect(loaded).toContain("express"); // the probe sees packages at all
    for (const lazy of ["@polar-sh/sdk:sdk", "openai", "@qdrant/js-client-rest"]) {
      expect(loaded).not.toContain(lazy);
    }
  });
});
