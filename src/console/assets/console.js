// The account console: plain DOM code over the public API (the same calls as curl; see /openapi.json). Data is
// only ever put into the page as text, never as HTML.
const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.getAttribute("content") ?? undefined;
const API = meta("perpetual-api-prefix") ?? "/v1";
const PROVIDERS = JSON.parse(meta("perpetual-providers") ?? "[]");
const SUPABASE_URL = meta("perpetual-supabase-url");
const SUPABASE_KEY = meta("perpetual-supabase-anon-key");
const TOKEN = "perpetual.apiKey";

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "onclick") node.addEventListener("click", value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

const date = (iso) => (iso ? new Date(iso).toLocaleString() : "never");
const money = (usd) => `$${Number(usd).toFixed(usd >= 1 || usd === 0 ? 2 : 6)}`;

function show(id, text) {
  const node = $(id);
  node.textContent = text ?? "";
  node.hidden = !text;
  if (text) node.focus?.();
}
const fail = (error) => show("error", error instanceof Error ? error.message : String(error));
const notify = (text) => {
  show("error", "");
  show("notice", text);
};

// Credentials: a Perpetual API key kept in this tab's session storage, or a Supabase session (also session storage).
let supabase;
async function bearer() {
  const key = sessionStorage.getItem(TOKEN);
  if (key) return key;
  if (!supabase) return undefined;
  const { data } = await supabase.auth.getSession();
  return data.session?.access_token;
}

async function api(method, path, body, extraHeaders = {}) {
  const token = await bearer();
  const res = await fetch(`${API}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...extraHeaders,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const data = text ? JSON.parse(text) : {};
  if (!res.ok) throw new Error(data?.error?.message ?? `${res.status} ${res.statusText}`);
  return data;
}

// ---- navigation ----
const views = ["keys", "usage", "memory", "account"];
const loaders = {};
async function open(view) {
  for (const v of views) $(`view-${v}`).hidden = v !== view;
  for (const b of document.querySelectorAll("#nav button")) {
    if (b.dataset.view === view) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  show("error", "");
  show("notice", "");
  try {
    await loaders[view]();
  } catch (error) {
    fail(error);
  }
}

async function enter() {
  $("signin").hidden = true;
  $("nav").hidden = false;
  await open("keys");
}

function leave() {
  sessionStorage.removeItem(TOKEN);
  supabase?.auth.signOut();
  $("nav").hidden = true;
  for (const v of views) $(`view-${v}`).hidden = true;
  $("signin").hidden = false;
  $("api-key").focus();
}

// ---- keys ----
loaders.keys = async () => {
  const [providerKeys, apiKeys] = await Promise.all([api("GET", "/provider-keys"), api("GET", "/api-keys")]);
  $("pk-provider").replaceChildren(...PROVIDERS.map((p) => el("option", { value: p.id }, p.id)));
  $("provider-keys").tBodies[0].replaceChildren(
    ...providerKeys.data.map((k) =>
      el(
        "tr",
        {},
        el("td", {}, k.provider),
        el("td", {}, `…${k.last4}`),
        el("td", {}, date(k.updated_at)),
        el(
          "td",
          {},
          el("button", { type: "button", class: "secondary", onclick: () => testProvider(k.provider) }, "Test"),
          el("button", { type: "button", class: "danger", onclick: () => removeProviderKey(k.provider) }, "Delete"),
        ),
      ),
    ),
  );
  $("api-keys").tBodies[0].replaceChildren(
    ...apiKeys.data.map((k) =>
      el(
        "tr",
        {},
        el("td", {}, k.name),
        el("td", {}, el("code", {}, k.display)),
        el("td", {}, date(k.last_used)),
        el("td", {}, k.expires_at ? date(k.expires_at) : "—"),
        el("td", {}, k.is_active ? "active" : "revoked"),
        el(
          "td",
          {},
          k.is_active
            ? el("button", { type: "button", class: "danger", onclick: () => revokeApiKey(k) }, "Revoke")
            : "",
        ),
      ),
    ),
  );
};

async function testProvider(provider) {
  const model = PROVIDERS.find((p) => p.id === provider)?.model;
  const out = $("provider-test");
  out.hidden = false;
  out.textContent = `Testing ${provider}…`;
  try {
    const answer = await api(
      "POST",
      "/chat/completions",
      { model: model ?? `${provider}/unknown`, messages: [{ role: "user", content: "Say OK." }], max_tokens: 1 },
      { "x-perpetual-memory": "off" },
    );
    out.textContent = `${provider} answered (${answer.model}): ${answer.choices?.[0]?.message?.content ?? ""}`;
  } catch (error) {
    out.textContent = `${provider}: ${error.message}`;
  }
}

async function removeProviderKey(provider) {
  if (!confirm(`Delete your ${provider} key?`)) return;
  try {
    await api("DELETE", `/provider-keys/${encodeURIComponent(provider)}`);
    notify(`Deleted the ${provider} key.`);
    await loaders.keys();
  } catch (error) {
    fail(error);
  }
}

async function revokeApiKey(key) {
  if (!confirm(`Revoke the key "${key.name}"? Programs using it stop working at once.`)) return;
  try {
    await api("DELETE", `/api-keys/${encodeURIComponent(key.id)}`);
    notify(`Revoked "${key.name}".`);
    await loaders.keys();
  } catch (error) {
    fail(error);
  }
}

$("add-provider-key").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const stored = await api("POST", "/provider-keys/add", {
      provider: $("pk-provider").value,
      api_key: $("pk-key").value,
    });
    $("pk-key").value = "";
    notify(`Stored the ${stored.provider} key ending in ${stored.last4}.`);
    await loaders.keys();
  } catch (error) {
    fail(error);
  }
});

$("create-api-key").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const expires = $("ak-expires").value;
    const created = await api("POST", "/api-keys", {
      ...($("ak-name").value.trim() ? { name: $("ak-name").value.trim() } : {}),
      ...(expires ? { expires_at: new Date(`${expires}T23:59:59Z`).toISOString() } : {}),
    });
    $("ak-name").value = "";
    $("new-key-value").textContent = created.key;
    $("new-key").hidden = false;
    await loaders.keys();
  } catch (error) {
    fail(error);
  }
});

$("copy-key").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("new-key-value").textContent);
    notify("Copied.");
  } catch {
    notify("Select the key and copy it by hand.");
  }
});

// ---- usage ----
const PALETTE = ["#2456c9", "#e07b00", "#1a9e5a", "#b3261e", "#7b3fc4", "#00838f", "#6d6d6d", "#c2185b"];
let usage;

loaders.usage = async () => {
  const end = new Date();
  const start = new Date(end.getTime() - 29 * 86_400_000);
  const day = (d) => d.toISOString().slice(0, 10);
  const [report, limits, plan] = await Promise.all([
    api("GET", `/usage?start=${day(start)}&end=${day(end)}`),
    api("GET", "/me/limits"),
    api("GET", "/billing"),
  ]);
  const days = Array.from({ length: 30 }, (_, i) => day(new Date(start.getTime() + i * 86_400_000)));
  usage = { report, days };
  drawUsage();
  const perDay = new Map(days.map((d) => [d, { requests: 0, total_tokens: 0, cost_usd: 0 }]));
  for (const line of report.data) {
    const t = perDay.get(line.date);
    if (!t) continue;
    t.requests += line.requests;
    t.total_tokens += line.total_tokens;
    t.cost_usd += line.cost_usd;
  }
  $("usage-totals").tBodies[0].replaceChildren(
    ...[...perDay]
      .filter(([, t]) => t.requests > 0)
      .reverse()
      .map(([d, t]) =>
        el(
          "tr",
          {},
          el("td", {}, d),
          el("td", {}, t.requests),
          el("td", {}, t.total_tokens),
          el("td", {}, money(t.cost_usd)),
        ),
      ),
  );
  const limit = (name, v) => [
    el("dt", {}, name),
    el(
      "dd",
      {},
      v.limit === null ? "no limit" : `${v.remaining} of ${v.limit} left (resets in ${v.resets_in_seconds} s)`,
    ),
  ];
  $("limits").replaceChildren(
    ...limit("Requests this minute", limits.requests_per_minute),
    ...limit("Requests today", limits.requests_per_day),
    ...limit("Tokens this minute", limits.tokens_per_minute),
    ...limit("Tokens today", limits.tokens_per_day),
    ...(limits.api_key ? limit("This key, requests this minute", limits.api_key.requests_per_minute) : []),
  );
  $("plan").replaceChildren(
    el("dt", {}, "Tier"),
    el("dd", {}, plan.tier),
    el("dt", {}, "Spent this month"),
    el("dd", {}, money(plan.month_spend_usd)),
    el("dt", {}, "Monthly spend cap"),
    el("dd", {}, plan.monthly_spend_cap_usd === null ? "none" : money(plan.monthly_spend_cap_usd)),
    el("dt", {}, "Prepaid balance"),
    el("dd", {}, plan.prepaid ? money(plan.balance_usd) : "not prepaid"),
  );
  $("portal").hidden = !plan.checkout_enabled;
};

function drawUsage() {
  const metric = $("usage-metric").value;
  const { report, days } = usage;
  const models = [...new Set(report.data.map((l) => l.model))];
  const value = new Map(report.data.map((l) => [`${l.date}|${l.model}`, l[metric]]));
  const totals = days.map((d) => models.reduce((sum, m) => sum + (value.get(`${d}|${m}`) ?? 0), 0));
  const max = Math.max(...totals, 0) || 1;
  const width = 600;
  const height = 200;
  const bar = width / days.length;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 20}`);
  svg.setAttribute("role", "img");
  const label = $("usage-metric").selectedOptions[0].textContent;
  svg.setAttribute("aria-label", `${label} per day for the last 30 days, by model`);
  days.forEach((d, i) => {
    let y = height;
    models.forEach((m, j) => {
      const v = value.get(`${d}|${m}`) ?? 0;
      if (v <= 0) return;
      const h = Math.max(1, (v / max) * (height - 10));
      y -= h;
      const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      for (const [k, val] of Object.entries({
        x: i * bar + 2,
        y,
        width: bar - 4,
        height: h,
        fill: PALETTE[j % PALETTE.length],
      }))
        rect.setAttribute(k, String(val));
      const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
      title.textContent = `${d} ${m}: ${metric === "cost_usd" ? money(v) : v}`;
      rect.append(title);
      svg.append(rect);
    });
  });
  for (const i of [0, 14, 29]) {
    const text = document.createElementNS("http://www.w3.org/2000/svg", "text");
    for (const [k, val] of Object.entries({
      x: i * bar + bar / 2,
      y: height + 15,
      "text-anchor": "middle",
      "font-size": 11,
    }))
      text.setAttribute(k, String(val));
    text.textContent = days[i].slice(5);
    svg.append(text);
  }
  const total = totals.reduce((a, b) => a + b, 0);
  $("usage-caption").textContent = `${label}: ${metric === "cost_usd" ? money(total) : total} in 30 days.`;
  const legend = el("div", { class: "legend" }, ...models.map((m) => el("span", {}, el("i", {}), m)));
  legend.querySelectorAll("i").forEach((node, j) => {
    node.style.background = PALETTE[j % PALETTE.length];
  });
  $("usage-chart").replaceChildren(svg, legend, $("usage-caption"));
}

$("usage-metric").addEventListener("change", () => usage && drawUsage());

$("portal").addEventListener("click", async () => {
  try {
    const session = await api("GET", "/billing/portal");
    location.assign(session.url);
  } catch (error) {
    fail(error);
  }
});

// ---- memory ----
let nextCursor;

function memoryItem(m) {
  const item = el(
    "li",
    {},
    el("div", {}, m.text),
    el(
      "div",
      { class: "meta" },
      `${m.role} · ${date(m.created_at)}${m.conversation_id ? ` · conversation ${m.conversation_id}` : ""}`,
      m.score === undefined ? "" : ` · score ${m.score.toFixed(3)}`,
      " ",
      el("button", { type: "button", class: "danger", onclick: () => forget(m, item) }, "Delete"),
    ),
  );
  return item;
}

async function forget(m, item) {
  try {
    await api("DELETE", `/memories/${encodeURIComponent(m.id)}`);
    item.remove();
    notify("Deleted that memory.");
  } catch (error) {
    fail(error);
  }
}

async function listMemories(more = false) {
  const conversation = $("ml-conversation").value.trim();
  const query = new URLSearchParams({ limit: "50" });
  if (conversation) query.set("conversation_id", conversation);
  if (more && nextCursor) query.set("after", nextCursor);
  const page = await api("GET", `/memories?${query}`);
  nextCursor = page.next_cursor ?? undefined;
  const items = page.data.map(memoryItem);
  if (more) $("memories").append(...items);
  else $("memories").replaceChildren(...items);
  $("more-memories").hidden = !page.has_more;
  if (!more && items.length === 0) notify("Nothing remembered here yet.");
}

loaders.memory = async () => {
  const settings = await api("GET", "/me/settings");
  $("mm-mode").value = settings.memory_mode ?? "";
  await listMemories();
};

$("memory-mode").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const settings = await api("PATCH", "/me/settings", { memory_mode: $("mm-mode").value || null });
    notify(`Memory for your requests: ${settings.memory_mode ?? "the server's default"}.`);
  } catch (error) {
    fail(error);
  }
});

$("memory-search").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const found = await api("POST", "/memories/search", { query: $("ms-query").value, limit: 20 });
    $("memories").replaceChildren(...found.data.map(memoryItem));
    $("more-memories").hidden = true;
    notify(found.data.length ? `${found.data.length} found.` : "Nothing relevant remembered.");
  } catch (error) {
    fail(error);
  }
});

$("memory-list").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await listMemories();
  } catch (error) {
    fail(error);
  }
});

$("more-memories").addEventListener("click", () => listMemories(true).catch(fail));

$("forget-conversation").addEventListener("click", async () => {
  const conversation = $("ml-conversation").value.trim();
  const what = conversation ? `the memories of conversation "${conversation}"` : "ALL your memories";
  if (!confirm(`Delete ${what}?`)) return;
  try {
    const query = new URLSearchParams(conversation ? { conversation_id: conversation } : {});
    const deleted = await api("DELETE", `/memories?${query}`);
    notify(`Deleted ${deleted.deleted} memories.`);
    await listMemories();
  } catch (error) {
    fail(error);
  }
});

// ---- account ----
loaders.account = async () => {
  const me = await api("GET", "/me");
  $("account").replaceChildren(
    el("dt", {}, "Email"),
    el("dd", {}, me.email ?? "—"),
    el("dt", {}, "User id"),
    el("dd", {}, el("code", {}, me.id)),
    el("dt", {}, "Tier"),
    el("dd", {}, me.tier),
    el("dt", {}, "Member since"),
    el("dd", {}, date(me.created_at)),
  );
};

$("export").addEventListener("click", async () => {
  try {
    const everything = await api("GET", "/me/export");
    const link = el("a", {
      href: URL.createObjectURL(new Blob([JSON.stringify(everything, null, 2)], { type: "application/json" })),
      download: "perpetual-export.json",
    });
    document.body.append(link);
    link.click();
    link.remove();
    notify("Export downloaded.");
  } catch (error) {
    fail(error);
  }
});

$("signout").addEventListener("click", leave);

// ---- sign-in ----
$("signin-key").addEventListener("submit", async (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN, $("api-key").value.trim());
  $("api-key").value = "";
  try {
    await api("GET", "/me");
    await enter();
  } catch (error) {
    sessionStorage.removeItem(TOKEN);
    fail(error);
  }
});

for (const button of document.querySelectorAll("#nav button")) {
  button.addEventListener("click", () => open(button.dataset.view));
}

async function start() {
  if (SUPABASE_URL && SUPABASE_KEY) {
    await new Promise((resolve, reject) => {
      const script = el("script", { src: "/console/vendor/supabase.js" });
      script.addEventListener("load", resolve);
      script.addEventListener("error", reject);
      document.head.append(script);
    });
    supabase = globalThis.supabase.createClient(SUPABASE_URL, SUPABASE_KEY, {
      auth: { storage: sessionStorage, persistSession: true, detectSessionInUrl: true, flowType: "implicit" },
    });
    $("signin-supabase").hidden = false;
    $("signin-supabase").addEventListener("submit", async (event) => {
      event.preventDefault();
      const { error } = await supabase.auth.signInWithOtp({
        email: $("email").value,
        options: { emailRedirectTo: `${location.origin}/console` },
      });
      if (error) fail(error.message);
      else notify("Check your email for the sign-in link.");
    });
  }
  if (await bearer()) {
    try {
      await api("GET", "/me");
      await enter();
      return;
    } catch (error) {
      sessionStorage.removeItem(TOKEN);
      fail(error);
    }
  }
  $("signin").hidden = false;
}

start().catch(fail);
