import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, parseAllDocuments } from "yaml";
import { loadConfig } from "../../src/config";
import { envSchema } from "../../src/config/env";

const { SERVER_NODE_FLAGS, SERVER_ENV } = require("../../scripts/node-runtime") as {
  SERVER_NODE_FLAGS: string[];
  SERVER_ENV: Record<string, string>;
};

const ROOT = join(__dirname, "..", "..");
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");
// biome-ignore lint/suspicious/noExplicitAny: manifests are arbitrary YAML, asserted field by field
type Doc = Record<string, any>;
const manifest = (path: string): Doc[] => parseAllDocuments(read(path)).map((d) => d.toJS() as Doc);
const envExample = () => [...read(".env.example").matchAll(/^([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]!);
const SECRET_NAME = /(KEY|SECRET|PASSWORD|TOKEN)/;

describe("Dockerfile", () => {
  const text = read("Dockerfile");
  const stages = text.split(/^FROM /m).slice(1);
  const runtime = stages.at(-1)!;

  test("When linted, then it is multi-stage on a Node LTS image and the runtime has production dependencies only", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const version = Number(/^ARG NODE_VERSION=(\d+)$/m.exec(text)?.[1]);
    expect(version % 2).toBe(0); // even majors are the LTS lines
    expect(version).toBeGreaterThanOrEqual(22);
    expect(text).toMatch(/npm ci --omit=dev/);
    expect(runtime).not.toMatch(/npm (ci|install)(?! --omit=dev)/);
    expect(runtime).not.toMatch(/COPY (--\S+ )*(src|tests) /);
  });

  test("When linted, then the runtime runs as non-root, writes only /data, checks /health and gets SIGTERM", () => {
    const user = /^USER (\S+)$/m.exec(runtime)?.[1];
    expect(user).toBeDefined();
    expect(["root", "0"]).not.toContain(user);
    expect(runtime).toMatch(/^VOLUME \["\/data"\]$/m);
    expect(runtime).toMatch(/DATA_DIR=\/data/);
    expect(runtime).toMatch(/^HEALTHCHECK .*\n?.*\/health/m);
    // Exec form: node is PID 1 and receives the signal (a shell form would swallow it).
    // with the server's V8 flags, the same as npm start's.
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(runtime)?.[1];
    expect(JSON.parse(entrypoint ?? "null")).toEqual(["node", ...SERVER_NODE_FLAGS, "dist/main.js"]);
    // and the server's environment (the allocator's settings), the same as npm start's.
    for (const [name, value] of Object.entries(SERVER_ENV)) expect(runtime).toContain(`${name}=${value}`);
  });

  test("When linted, then no secret is baked in and .dockerignore keeps secrets and state out of the context", () => {
    for (const line of text.split("\n").filter((l) => /^(ENV|ARG)\b/.test(l) || /^\s+\w+=/.test(l))) {
      const names = [...line.matchAll(/([A-Z][A-Z0-9_]*)=/g)].map((m) => m[1]!);
      expect(names.filter((n) => SECRET_NAME.test(n))).toEqual([]);
    }
    expect(text).not.toMatch(/COPY .*\.env\b/);
    const ignored = read(".dockerignore").split("\n");
    for (const entry of [".env", ".env.*", "node_modules", "data", ".git"]) expect(ignored).toContain(entry);
  });
});

describe("docker-compose.yml", () => {
  const compose = parse(read("docker-compose.yml")) as Doc;

  test("When docker-compose validates it (every profile), then it is valid", () => {
    const which = spawnSync("docker-compose", ["version"], { encoding: "utf8" });
    if (which.error) throw new Error("docker-compose is missing: apt-get install docker-compose (.ci/run does)");
    // As an operator runs it: next to a .env made from .env.example by the one command docs/DEPLOYMENT.md gives.
    const dir = mkdtempSync(join(tmpdir(), "perpetual-compose-"));
    copyFileSync(join(ROOT, "docker-compose.yml"), join(dir, "docker-compose.yml"));
    copyFileSync(join(ROOT, ".env.example"), join(dir, ".env.example"));
    const fill = /```sh\n(sed [\s\S]*?> \.env)\n```/.exec(read("docs/DEPLOYMENT.md"))![1]!;
    execFileSync("bash", ["-c", fill], { cwd: dir });
    const env = readFileSync(join(dir, ".env"), "utf8");
    expect(env).toMatch(/^POSTGRES_PASSWORD=[0-9a-f]{48}$/m);
    expect(Buffer.from(/^API_KEY_ENCRYPTION_KEY=(.+)$/m.exec(env)![1]!, "base64")).toHaveLength(32);
    const out = execFileSync("docker-compose", ["--profile", "local", "--profile", "tls", "config"], {
      cwd: dir,
      encoding: "utf8",
    });
    const resolved = parse(out) as Doc;
    expect(Object.keys(resolved.services).sort()).toEqual([
      "api",
      "caddy",
      "migrate",
      "postgres",
      "qdrant",
      "redis",
      "vllm",
    ]);
    // Logs rotate for every service (Docker's json-file driver keeps everything otherwise).
    for (const service of Object.values(resolved.services) as Doc[]) {
      expect(service.logging).toEqual({ driver: "json-file", options: { "max-size": "20m", "max-file": "5" } });
    }
    // The TLS profile runs the shipped Caddyfile (tests/component/reverse-proxy.test.ts runs it in front of the API).
    expect(compose.services.caddy.profiles).toEqual(["tls"]);
    expect(compose.services.caddy.volumes).toContain("./config/caddy/Caddyfile:/etc/caddy/Caddyfile:ro");
  });

  test("When read, then the api waits for healthy dependencies and migrations, and every variable is in .env.example", () => {
    const api = compose.services.api;
    expect(api.depends_on).toEqual({
      postgres: { condition: "service_healthy" },
      redis: { condition: "service_healthy" },
      qdrant: { condition: "service_healthy" },
      migrate: { condition: "service_completed_successfully" },
    });
    expect(api.read_only).toBe(true);
    for (const name of ["postgres", "redis", "qdrant", "vllm"])
      expect(compose.services[name].healthcheck).toBeDefined();
    expect(compose.services.vllm.profiles).toEqual(["local"]);
    expect(compose.services.vllm.deploy.resources.reservations.devices[0].capabilities).toEqual(["gpu"]);
    const documented = new Set(envExample());
    const used = [...read("docker-compose.yml").matchAll(/\$\{([A-Z][A-Z0-9_]*)/g)].map((m) => m[1]!);
    expect(used.filter((name) => !documented.has(name))).toEqual([]);
    // What the compose file sets for the api, the server reads.
    const known = new Set(Object.keys(envSchema.shape));
    expect(Object.keys(api.environment).filter((name) => !known.has(name))).toEqual([]);
  });
});

describe("k8s/", () => {
  test("When k8s/, the base and every overlay are built with kubectl kustomize and each object is checked against the Kubernetes schemas, then nothing fails", () => {
    const run = spawnSync(process.execPath, [join(ROOT, "scripts", "validate-k8s.mjs")], { encoding: "utf8" });
    const report = JSON.parse(run.stdout) as {
      checked: string[];
      problems: string[];
      builds: Record<string, string[]>;
    };
    expect(report.problems).toEqual([]);
    expect(run.status).toBe(0);
    expect(report.checked.length).toBeGreaterThanOrEqual(12);
    expect(report.builds.base).toEqual(
      expect.arrayContaining([
        "Deployment/perpetual-api",
        "Service/perpetual-api",
        "HorizontalPodAutoscaler/perpetual-api",
        "PodDisruptionBudget/perpetual-api",
        "Job/perpetual-migrate",
        "ConfigMap/perpetual-config",
      ]),
    );
    expect(report.builds.root).toEqual(report.builds.base);
    expect(report.builds.local).toEqual(
      expect.arrayContaining(["Deployment/perpetual-vllm", "Service/perpetual-vllm"]),
    );
    expect(report.builds.loadbalancer).toEqual(report.builds.base);
    // No overlay sits inside its base: kustomize v5 refuses that ("cycle detected"), which is how it broke before.
    for (const overlay of ["local", "loadbalancer"]) {
      const [k] = manifest(`k8s/overlays/${overlay}/kustomization.yaml`);
      expect(k!.resources).toContain("../../base");
    }
    const [loadBalancer] = manifest("k8s/overlays/loadbalancer/service.yaml");
    expect(loadBalancer!.spec.type).toBe("LoadBalancer");
  });

  test("When the Deployment is read, then it runs 3 hardened replicas with probes and drains streams before it is killed", () => {
    const [deployment] = manifest("k8s/base/deployment.yaml");
    const [config] = manifest("k8s/base/configmap.yaml");
    const pod = deployment!.spec.template.spec;
    const api = pod.containers[0];
    expect(deployment!.spec.replicas).toBe(3);
    expect(api.livenessProbe.httpGet.path).toBe("/health");
    expect(api.readinessProbe.httpGet.path).toBe("/ready");
    expect(api.resources).toEqual({ requests: { cpu: "1", memory: "2Gi" }, limits: { cpu: "2", memory: "4Gi" } });
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(api.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    const preStop = Number(api.lifecycle.preStop.exec.command[1]);
    const drain = Number(config!.data.SHUTDOWN_TIMEOUT_SECONDS);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(preStop + drain + 5);
    const mounts = api.volumeMounts.map((m: Doc) => m.mountPath);
    expect(mounts).toEqual(expect.arrayContaining(["/data", "/tmp"]));
  });

  test("When selectors and settings are read, then they match the pods, and the ConfigMap holds only known, non-secret settings", () => {
    const [deployment] = manifest("k8s/base/deployment.yaml");
    const labels = deployment!.spec.template.metadata.labels;
    for (const file of ["k8s/base/service.yaml", "k8s/base/pdb.yaml"]) {
      const [doc] = manifest(file);
      const selector = doc!.spec.selector.matchLabels ?? doc!.spec.selector;
      expect(labels).toMatchObject(selector);
    }
    const [hpa] = manifest("k8s/base/hpa.yaml");
    expect(hpa!.spec.scaleTargetRef).toMatchObject({ kind: "Deployment", name: deployment!.metadata.name });
    expect(hpa!.spec.minReplicas).toBe(3);
    const known = new Set(Object.keys(envSchema.shape));
    for (const file of ["k8s/base/configmap.yaml", "k8s/overlays/local/local-mode.yaml"]) {
      const [config] = manifest(file);
      const names = Object.keys(config!.data);
      expect(names.filter((n) => !known.has(n))).toEqual([]);
      expect(names.filter((n) => SECRET_NAME.test(n))).toEqual([]);
    }
    // The merged ConfigMap of the local overlay is a valid configuration with the Secret's shared stores, and
    // without them the pods refuse to start (instead of each replica keeping its own memory and counters).
    const [base] = manifest("k8s/base/configmap.yaml");
    const [local] = manifest("k8s/overlays/local/local-mode.yaml");
    const shared = { QDRANT_URL: "http://qdrant:6333", REDIS_URL: "redis://redis:6379" };
    expect(() => loadConfig({ ...base!.data, ...local!.data, ...shared }, { server: true })).not.toThrow();
    expect(() => loadConfig({ ...base!.data, ...local!.data }, { server: true })).toThrow(/QDRANT_URL[\s\S]*REDIS_URL/);
    const [secret] = manifest("k8s/secret.example.yaml");
    expect(Object.values(secret!.stringData).every((v) => v === "")).toBe(true);
    const [kustomization] = manifest("k8s/base/kustomization.yaml");
    expect(kustomization!.resources).not.toContain("secret.example.yaml");
    // The Secret is required: without it pods stop at CreateContainerConfigError instead of starting unconfigured.
    for (const file of ["k8s/base/deployment.yaml", "k8s/base/migration-job.yaml"]) {
      const [workload] = manifest(file);
      const envFrom = workload!.spec.template.spec.containers[0].envFrom as {
        secretRef?: { name: string; optional?: boolean };
      }[];
      expect(envFrom.find((e) => e.secretRef)?.secretRef).toEqual({ name: "perpetual-secrets", optional: false });
    }
    const [ingress] = manifest("k8s/ingress.example.yaml");
    expect(ingress!.metadata.annotations["nginx.ingress.kubernetes.io/proxy-buffering"]).toBe("off");
    expect(Number(ingress!.metadata.annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"])).toBeGreaterThan(
      300,
    );
  });
});
