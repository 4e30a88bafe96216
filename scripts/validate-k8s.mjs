// Validates every Kubernetes manifest under k8s/ against the Kubernetes OpenAPI schemas (kubernetes-models, which
// is ES-modules only, hence a script of its own), and checks each kustomization: its resources and patches exist
// and parse, patches name a resource of the build, and images name a container image used. Prints one JSON
// report; exit code 1 when anything fails. Used by tests/unit/deployment.test.ts; `node scripts/validate-k8s.mjs`.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "k8s");
const problems = [];
const checked = [];

function yamlFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(name) ? [path] : [];
  });
}

function documents(path) {
  const docs = parseAllDocuments(readFileSync(path, "utf8"));
  for (const doc of docs) for (const error of doc.errors) problems.push(`${relative(root, path)}: ${error.message}`);
  return docs.map((d) => d.toJS()).filter(Boolean);
}

async function validate(path, doc) {
  const [group, version] = doc.apiVersion.includes("/") ? doc.apiVersion.split("/") : [null, doc.apiVersion];
  const module = await import(group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`).catch(
    () => undefined,
  );
  const Model = module?.[doc.kind];
  const where = `${relative(root, path)}: ${doc.kind}/${doc.metadata?.name}`;
  if (!Model) return problems.push(`${where}: no schema for ${doc.apiVersion} ${doc.kind}`);
  try {
    new Model(doc).validate();
    checked.push(where);
  } catch (error) {
    problems.push(`${where}: ${error.message}`);
  }
}

function kustomization(dir) {
  const [k] = documents(join(dir, "kustomization.yaml"));
  const resources = [];
  for (const entry of k.resources ?? []) {
    const path = resolve(dir, entry);
    if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) resources.push(...kustomization(path));
    else if (statSync(path, { throwIfNoEntry: false })) resources.push(...documents(path));
    else problems.push(`${relative(root, dir) || "."}/kustomization.yaml: resource ${entry} does not exist`);
  }
  for (const patch of k.patches ?? []) {
    for (const doc of documents(resolve(dir, patch.path))) {
      if (!resources.some((r) => r.kind === doc.kind && r.metadata?.name === doc.metadata?.name)) {
        problems.push(`${relative(root, dir)}/kustomization.yaml: patch ${patch.path} targets no resource`);
      }
    }
  }
  const images = resources.flatMap((r) => r.spec?.template?.spec?.containers?.map((c) => c.image) ?? []);
  for (const image of k.images ?? []) {
    if (!images.includes(image.name)) problems.push(`kustomization.yaml: image ${image.name} is used by no container`);
  }
  return resources;
}

for (const path of yamlFiles(root)) {
  if (path.endsWith("kustomization.yaml")) continue;
  for (const doc of documents(path)) await validate(path, doc);
}
const base = kustomization(root);
const local = kustomization(join(root, "overlays", "local"));
console.log(
  JSON.stringify({
    checked,
    problems,
    builds: { base: base.map((r) => `${r.kind}/${r.metadata.name}`), local: local.map((r) => `${r.kind}/${r.metadata.name}`) },
  }),
);
process.exit(problems.length > 0 ? 1 : 0);
