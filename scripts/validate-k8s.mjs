// Builds k8s/ and every overlay with the real kustomize (`kubectl kustomize`, Debian's kubectl ships kustomize v5)
// and validates each object of each build, and the example manifests applied by hand (Secret, Ingress), against
// the Kubernetes OpenAPI schemas (kubernetes-models, which is ES-modules only, hence a script of its own). Prints
// one JSON report; exit code 1 when anything fails. Used by tests/unit/deployment.test.ts;
// `node scripts/validate-k8s.mjs`.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "k8s");
const problems = [];
const checked = [];
const builds = {};

function parse(text, where) {
  const docs = parseAllDocuments(text);
  for (const doc of docs) for (const error of doc.errors) problems.push(`${where}: ${error.message}`);
  return docs.map((d) => d.toJS()).filter(Boolean);
}

async function validate(where, doc) {
  const [group, version] = doc.apiVersion.includes("/") ? doc.apiVersion.split("/") : [null, doc.apiVersion];
  const module = await import(group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`).catch(
    () => undefined,
  );
  const Model = module?.[doc.kind];
  const name = `${where}: ${doc.kind}/${doc.metadata?.name}`;
  if (!Model) return problems.push(`${name}: no schema for ${doc.apiVersion} ${doc.kind}`);
  try {
    new Model(doc).validate();
    checked.push(name);
  } catch (error) {
    problems.push(`${name}: ${error.message}`);
  }
}

/** `kubectl kustomize dir`: the objects it builds, or a problem (a kustomize error is what `apply -k` would hit). */
function build(dir) {
  try {
    return parse(execFileSync("kubectl", ["kustomize", dir], { encoding: "utf8", stdio: "pipe" }), dir);
  } catch (error) {
    if (error.code === "ENOENT") problems.push("kubectl is missing: apt-get install kubectl (.ci/run does)");
    else problems.push(`kubectl kustomize ${relative(root, dir) || "."}: ${String(error.stderr || error.message).trim()}`);
    return [];
  }
}

const overlays = readdirSync(join(root, "overlays")).filter((name) => existsSync(join(root, "overlays", name, "kustomization.yaml")));
const targets = { root: root, base: join(root, "base"), ...Object.fromEntries(overlays.map((o) => [o, join(root, "overlays", o)])) };
for (const [name, dir] of Object.entries(targets)) {
  const objects = build(dir);
  builds[name] = objects.map((o) => `${o.kind}/${o.metadata?.name}`);
  for (const object of objects) {
    await validate(name, object);
    if (object.kind !== "Namespace" && object.metadata?.namespace !== "perpetual") {
      problems.push(`${name}: ${object.kind}/${object.metadata?.name} is not in the perpetual namespace`);
    }
  }
}
for (const file of readdirSync(root).filter((f) => f.endsWith(".example.yaml"))) {
  for (const doc of parse(readFileSync(join(root, file), "utf8"), file)) await validate(file, doc);
}
console.log(JSON.stringify({ checked, problems, builds }));
process.exit(problems.length > 0 ? 1 : 0);
