import { randomUUID } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI from "openai";
import type { Browser, Page } from "playwright-core";
import { type Database, migrate, openPglite } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { type FakeOpenAiUpstream, startFakeOpenAiUpstream } from "../fakes/openai-upstream";
import { type FakeSupabaseAuth, startFakeSupabaseAuth } from "../fakes/supabase-auth";
import { startTestApp, type TestApp, testConfig } from "../helpers/app";
import { launchChromium } from "../helpers/chromium";
import { eventually } from "../helpers/eventually";

jest.setTimeout(300_000);

// Screenshots of each page, kept as test artifacts (not committed: see .gitignore).
const SHOTS = join(__dirname, "..", "..", "test-artifacts", "console");

/**
 * The account console driven in headless Chromium (Debian's, through playwright-core) against the real app: the
 * page uses only the public API, so every click below is also an API round trip checked end to end.
 */
describe("The account console in headless Chromium", () => {
  let db: Database;
  let upstream: FakeOpenAiUpstream;
  let app: TestApp;
  let browser: Browser;
  let page: Page;
  let key: string;
  let userId: string;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    db = await openPglite();
    await migrate(db);
    upstream = await startFakeOpenAiUpstream();
    app = await startTestApp({ db, config: testConfig({ OPENAI_BASE_URL: upstream.url }) });
    const user = await createUser(db, "console@example.com", "pro");
    userId = user.id;
    key = (await createApiKey(db, user.id, { name: "first" })).key;
    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, acceptDownloads: true });
    page = await context.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await app.close();
    await upstream.close();
    await db.close();
  });

  // Each page is screenshotted, and must fit a phone's width (390 px) without sideways scrolling.
  const shot = async (name: string) => {
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
    // A string, evaluated in the page (this file is compiled without the DOM's types).
    const wider = await page.evaluate<string[]>(`[...document.querySelectorAll("body *")]
      .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
      .filter((e) => !e.closest("table"))
      .map((e) => e.tagName.toLowerCase() + "#" + e.id + "." + e.className)`);
    expect(wider).toEqual([]);
    expect(await page.evaluate<number>("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
  };
  // playwright-core has no expect(): waiting on a locator with the text is the retrying assertion (it times out).
  const sees = (selector: string, text: string) => page.locator(selector, { hasText: text }).first().waitFor();

  test("When the page is served, then it carries a strict CSP and loads nothing from elsewhere", async () => {
    const res = await fetch(`${app.baseUrl}/console`);
    expect(res.status).toBe(200);
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain("unsafe-inline");
    const html = await res.text();
    expect(html).not.toMatch(/<script(?![^>]*src="\/console\/)/);
    expect(html).not.toMatch(/https?:\/\//);
  });

  test("When the console calls the API, then every call it makes is in the OpenAPI document (no private endpoints)", async () => {
    const source = readFileSync(join(__dirname, "..", "..", "src", "console", "assets", "console.js"), "utf8");
    const calls = [...source.matchAll(/api\(\s*"([A-Z]+)",\s*([`"])(.*?)\2/gs)].map(([, method, , path]) => ({
      method: method!.toLowerCase(),
      // `${…}` path segments stand for a parameter; the query string is not part of the path.
      path: `/v1${path!
        .split("?")[0]!
        .replace(/\$\{[^}]*\}(?=\/|$)/g, "*")
        .replace(/\$\{[^}]*\}$/, "")}`,
    }));
    expect(calls.length).toBeGreaterThan(15);
    const document = (await (await fetch(`${app.baseUrl}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const documented = Object.entries(document.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => ({ method, pattern: new RegExp(`^${path.replace(/\{[^}]+\}/g, "[^/]+")}$`) })),
    );
    const missing = calls.filter(
      (c) => !documented.some((d) => d.method === c.method && d.pattern.test(c.path.replace(/\*/g, "x"))),
    );
    expect(missing).toEqual([]);
  });

  test("When a wrong key is entered, then the API's message is shown and nothing is kept", async () => {
    const violations: string[] = [];
    page.on("console", (m) => {
      if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
    });
    await page.goto(`${app.baseUrl}/console`);
    await page.getByLabel("Perpetual API key").fill("sk-perp-not-a-real-key-000000000000");
    await page.getByRole("button", { name: "Sign in" }).click();
    await sees("#error", "Incorrect API key provided");
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    expect(violations).toEqual([]);
    await shot("signin");
  });

  test("When signed in with a key, then it lives in sessionStorage only, never in the URL or localStorage", async () => {
    await page.getByLabel("Perpetual API key").fill(key);
    await page.getByRole("button", { name: "Sign in" }).press("Enter");
    await page.locator("#view-keys").waitFor();
    expect(page.url()).not.toContain(key);
    expect(await page.evaluate(() => Object.values(sessionStorage))).toEqual([key]);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
  });

  test("When a provider key is added, then it is listed by its last 4 characters and the test call answers", async () => {
    const providerKey = "sk-proj-console-0123456789wxyz";
    await page.getByLabel("Provider", { exact: true }).selectOption("openai");
    await page.getByLabel("API key", { exact: true }).fill(providerKey);
    await page.getByRole("button", { name: "Add key" }).click();
    await sees("#notice", "ending in wxyz");
    await sees("#provider-keys tbody tr", "…wxyz");
    const row = page.locator("#provider-keys tbody tr", { hasText: "openai" });
    expect(await page.locator("body").innerText()).not.toContain(providerKey);
    await row.getByRole("button", { name: "Test" }).click();
    await sees("#provider-test", "openai answered");
    expect(upstream.received.at(-1)?.authorization).toBe(`Bearer ${providerKey}`);
    await shot("keys");
  });

  test("When an API key is created, then it is shown once with a copy button, and it can be revoked", async () => {
    await page.getByLabel("Name").fill("ci runner");
    await page.getByRole("button", { name: "Create key" }).click();
    await page.locator("#new-key").waitFor();
    const created = (await page.locator("#new-key-value").innerText()).trim();
    expect(created).toMatch(/^sk-perp-/);
    await page.getByRole("button", { name: "Copy" }).waitFor();
    const api = new OpenAI({ apiKey: created, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
    expect((await api.models.list()).data.length).toBeGreaterThan(0);

    page.once("dialog", (dialog) => dialog.accept());
    await page.locator("#api-keys tbody tr", { hasText: "ci runner" }).getByRole("button", { name: "Revoke" }).click();
    await page.locator("#api-keys tbody tr", { hasText: "ci runner" }).filter({ hasText: "revoked" }).waitFor();
    await expect(api.models.list()).rejects.toMatchObject({ status: 401 });
  });

  test("When the user has chatted, then Usage shows it per day and model, with limits and plan", async () => {
    const client = new OpenAI({ apiKey: key, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
    await client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "Hello there" }] });
    await app.services.usage.flush();
    await page.getByRole("button", { name: "Usage" }).click();
    await page.locator("#usage-chart svg rect").first().waitFor({ state: "attached" });
    await page.locator("#usage-totals tbody tr").first().waitFor();
    await sees("#limits", "Requests this minute");
    await sees("#plan", "pro");
    await page.getByLabel("Chart").selectOption("cost_usd");
    await sees("#usage-caption", "Cost (USD)");
    await shot("usage");
  });

  test("When memories exist, then Memory searches and deletes them and toggles the default mode", async () => {
    const imported = await fetch(`${app.baseUrl}/v1/memories`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({
        memories: [
          { role: "user", text: "My sailboat is called Marigold and it is moored in Brest.", conversation_id: "boats" },
          { role: "user", text: "I prefer green tea in the mornings.", conversation_id: "habits" },
        ],
      }),
    });
    expect(imported.status).toBe(202);
    await eventually(async () => {
      await app.services.memory.outbox.drain();
      return (await app.services.memory.list(userId, { limit: 10 })).data.length >= 2;
    });
    await page.getByRole("button", { name: "Memory" }).click();
    await page.getByLabel("Search what Perpetual remembers").fill("what is my boat called");
    await page.getByRole("button", { name: "Search", exact: true }).click();
    const hit = page.locator("#memories li", { hasText: "Marigold" });
    await hit.waitFor();
    await shot("memory");
    await hit.getByRole("button", { name: "Delete" }).click();
    await sees("#notice", "Deleted that memory");
    await page.locator("#memories li", { hasText: "Marigold" }).waitFor({ state: "detached" });
    const left = await app.services.memory.list(userId, { limit: 10 });
    expect(left.data.map((m) => m.text)).toContain("I prefer green tea in the mornings.");
    expect(left.data.map((m) => m.text).join(" ")).not.toContain("Marigold");

    await page.getByLabel("Memory for requests that do not say").selectOption("off");
    await page.getByRole("button", { name: "Save" }).click();
    await sees("#notice", "Memory for your requests: off");
    const settings = await fetch(`${app.baseUrl}/v1/me/settings`, { headers: { authorization: `Bearer ${key}` } });
    expect(await settings.json()).toMatchObject({ memory_mode: "off" });
  });

  test("When the user exports, then the JSON holds the account, keys metadata, usage and memories", async () => {
    await page.getByRole("button", { name: "Account" }).click();
    await sees("#account", "console@example.com");
    await shot("account");
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Export everything as JSON" }).click(),
    ]);
    const exported = JSON.parse(readFileSync((await download.path())!, "utf8"));
    expect(exported.object).toBe("user.export");
    expect(exported.account.email).toBe("console@example.com");
    expect(exported.provider_keys).toEqual([expect.objectContaining({ provider: "openai", last4: "wxyz" })]);
    expect(JSON.stringify(exported)).not.toContain("0123456789wxyz");
    expect(exported.api_keys.length).toBe(2);
    expect(exported.usage.length).toBeGreaterThan(0);
    expect(exported.memories.map((m: { text: string }) => m.text)).toContain("I prefer green tea in the mornings.");
  });

  test("When signed out, then the key is gone from the tab", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Perpetual API key").waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
  });
});

describe("The account console signing in through Supabase Auth", () => {
  let db: Database;
  let supabase: FakeSupabaseAuth;
  let app: TestApp;
  let browser: Browser;

  beforeAll(async () => {
    db = await openPglite();
    await migrate(db);
    supabase = await startFakeSupabaseAuth();
    app = await startTestApp({
      db,
      config: testConfig({ SUPABASE_URL: supabase.url, SUPABASE_KEY: supabase.anonKey }),
    });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await app.close();
    await supabase.close();
    await db.close();
  });

  test("When a user asks for an email link and follows it, then the Supabase session signs them in (tab-only storage)", async () => {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${app.baseUrl}/console`);
    const csp = (await page.request.get(`${app.baseUrl}/console`)).headers()["content-security-policy"] ?? "";
    expect(csp).toContain(`connect-src 'self' ${supabase.url}`);
    await page.getByLabel("Or get a sign-in link by email").fill("sb-user@example.com");
    await page.getByRole("button", { name: "Send link" }).click();
    await page.locator("#notice", { hasText: "Check your email" }).waitFor();
    expect(supabase.otpRequests).toEqual(["sb-user@example.com"]);

    // The link (through Supabase's /verify) lands back on the console with the session in the fragment
    // (Supabase's implicit flow): a new page load, as from another site.
    const errors: string[] = [];
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    await page.goto("about:blank");
    const token = await supabase.accessToken(randomUUID(), { email: "sb-user@example.com" });
    const expiresAt = Math.floor(Date.now() / 1000) + 3600;
    await page.goto(
      `${app.baseUrl}/console#access_token=${token}&expires_in=3600&expires_at=${expiresAt}` +
        "&refresh_token=rt-1&token_type=bearer&type=magiclink",
    );
    await page
      .locator("#view-keys")
      .waitFor()
      .catch(async (error) => {
        throw new Error(
          `${error}\npage errors: ${errors.join("\n")}\nshown: ${await page.locator("#error").innerText()}`,
        );
      });
    await page.getByRole("button", { name: "Account" }).click();
    await page.locator("#account", { hasText: "sb-user@example.com" }).waitFor();
    expect(page.url()).not.toContain("access_token");
    expect(await page.evaluate<number>("localStorage.length")).toBe(0);
    expect(await page.evaluate<string>("JSON.stringify(Object.keys(sessionStorage))")).toMatch(/auth-token/);
  });
});
