import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { Agent, fetch as undiciFetch } from "undici";
import { type Database, migrate, openPostgres } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { type FakeOpenAiUpstream, startFakeOpenAiUpstream } from "../fakes/openai-upstream";
import { startTestApp, type TestApp, testConfig } from "../helpers/app";
import { createTestDatabase } from "../helpers/postgres";
import { collect, waitForOutput } from "../helpers/processes";

const { freePort } = require("../../scripts/services") as { freePort: () => Promise<number> };

jest.setTimeout(300_000);

const ROOT = join(__dirname, "..", "..");
const tool = (name: string) => (existsSync(`/usr/sbin/${name}`) ? `/usr/sbin/${name}` : name);
// The fake upstream echoes "Echo: " and these twenty words, one SSE chunk per word, 40 ms apart (~800 ms in all).
const SENTENCE = Array.from({ length: 20 }, (_, i) => `word${i}`).join(" ");

/** `${NAME}` placeholders filled the way the nginx image's templates (envsubst) fill them. */
function render(template: string, values: Record<string, string>): string {
  return template.replace(/\$\{([A-Z_]+)\}/g, (whole, name: string) => values[name] ?? whole);
}

describe("Shipped reverse-proxy configs (nginx with TLS, Caddy) in front of the API, the openai SDK as client", () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;
  let upstream: FakeOpenAiUpstream;
  let app: TestApp;
  let apiKey: string;
  const children: ChildProcess[] = [];
  // The test's own certificate is self-signed: the client trusts it explicitly, nothing else changes.
  const insecure = new Agent({ connect: { rejectUnauthorized: false } });

  beforeAll(async () => {
    database = await createTestDatabase();
    db = openPostgres({ url: database.url, poolSize: 3 });
    await migrate(db);
    upstream = await startFakeOpenAiUpstream();
    app = await startTestApp({ db, config: testConfig({ OPENAI_BASE_URL: upstream.url }) });
    const user = await createUser(db, "proxied@example.com", "enterprise");
    apiKey = (await createApiKey(db, user.id)).key;
    await app.services.providerKeys.add(user.id, "openai", "sk-proj-proxied-0000000000");
  });

  afterAll(async () => {
    for (const child of children) child.kill("SIGTERM");
    await insecure.close();
    await app.close();
    await upstream.close();
    await db.close();
    await database.drop();
  });

  const apiPort = () => new URL(app.baseUrl).port;

  async function startNginx(): Promise<string> {
    const dir = mkdtempSync(join(tmpdir(), "perpetual-nginx-"));
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-days",
        "1",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
      ],
      { stdio: "ignore" },
    );
    const port = await freePort();
    const site = render(readFileSync(join(ROOT, "config", "nginx", "perpetual.conf.template"), "utf8"), {
      NGINX_HOST: "localhost",
      NGINX_PORT: `127.0.0.1:${port}`,
      PERPETUAL_UPSTREAM: `127.0.0.1:${apiPort()}`,
      TLS_CERTIFICATE: join(dir, "cert.pem"),
      TLS_CERTIFICATE_KEY: join(dir, "key.pem"),
    });
    expect(site).not.toMatch(/\$\{/);
    writeFileSync(join(dir, "perpetual.conf"), site);
    for (const temp of ["body", "proxy", "fastcgi", "uwsgi", "scgi"]) mkdirSync(join(dir, temp));
    // The main nginx.conf of a distribution, reduced to what a test needs; the site file is the shipped one.
    writeFileSync(
      join(dir, "nginx.conf"),
      `${process.getuid?.() === 0 ? "user root;\n" : ""}daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events {}
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/perpetual.conf;
}
`,
    );
    const check = collect(spawn(tool("nginx"), ["-t", "-c", join(dir, "nginx.conf"), "-p", dir]));
    const checked = await check.finished;
    expect(checked.stderr).toContain("syntax is ok");
    const nginx = spawn(tool("nginx"), ["-c", join(dir, "nginx.conf"), "-p", dir], { stdio: "ignore" });
    children.push(nginx);
    await waitUntilServing(`https://localhost:${port}/health`);
    return `https://localhost:${port}`;
  }

  async function startCaddy(): Promise<string> {
    const dir = mkdtempSync(join(tmpdir(), "perpetual-caddy-"));
    const port = await freePort();
    const caddy = spawn(
      tool("caddy"),
      ["run", "--config", join(ROOT, "config", "caddy", "Caddyfile"), "--adapter", "caddyfile"],
      {
        env: {
          ...process.env,
          HOME: dir,
          XDG_DATA_HOME: dir,
          XDG_CONFIG_HOME: dir,
          CADDY_ADMIN: "off",
          DOMAIN: `http://127.0.0.1:${port}`,
          PERPETUAL_UPSTREAM: `127.0.0.1:${apiPort()}`,
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    children.push(caddy);
    const { output } = collect(caddy);
    await waitForOutput(output, /serving initial configuration|server running/);
    await waitUntilServing(`http://127.0.0.1:${port}/health`);
    return `http://127.0.0.1:${port}`;
  }

  async function waitUntilServing(url: string) {
    for (let i = 0; i < 100; i++) {
      const ok = await undiciFetch(url, { dispatcher: insecure })
        .then((r) => r.ok)
        .catch(() => false);
      if (ok) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${url} never answered`);
  }

  const clientFor = (origin: string, key = apiKey) =>
    new OpenAI({
      apiKey: key,
      baseURL: `${origin}/v1`,
      maxRetries: 0,
      fetch: ((url: string, init: object) =>
        undiciFetch(url, { ...init, dispatcher: insecure })) as unknown as typeof globalThis.fetch,
    });

  async function expectStreamsThrough(origin: string) {
    const client = clientFor(origin);
    const arrivals: number[] = [];
    let text = "";
    const stream = await client.chat.completions.create({
      model: "openai/slow-stream",
      stream: true,
      messages: [{ role: "user", content: SENTENCE }],
    });
    for await (const chunk of stream) {
      const piece = chunk.choices[0]?.delta?.content;
      if (piece) {
        arrivals.push(performance.now());
        text += piece;
      }
    }
    expect(text.trim()).toBe(`Echo: ${SENTENCE}`);
    // Chunks reach the client as the upstream sends them (~800 ms apart first to last), not in one buffered lump.
    expect(arrivals.length).toBe(21);
    expect(arrivals.at(-1)! - arrivals[0]!).toBeGreaterThan(400);

    const answer = await client.chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "Hi" }],
    });
    expect(answer.choices[0]?.message.content).toBe("Echo: Hi");
    // Errors pass through unchanged: OpenAI's shape, status and the request id.
    const refused = await clientFor(origin, "sk-perp-wrong")
      .chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "Hi" }] })
      .catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((refused as InstanceType<typeof OpenAI.AuthenticationError>).error).toMatchObject({
      type: "invalid_request_error",
    });
    expect((refused as InstanceType<typeof OpenAI.AuthenticationError>).headers?.get("x-request-id")).toBeTruthy();
  }

  test("When a completion streams through nginx (config/nginx/perpetual.conf.template, TLS), then chunks arrive as sent", async () => {
    await expectStreamsThrough(await startNginx());
  });

  test("When a completion streams through Caddy (config/caddy/Caddyfile), then chunks arrive as sent", async () => {
    await expectStreamsThrough(await startCaddy());
  });
});
