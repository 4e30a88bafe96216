import OpenAI from "openai";
import { type Database, migrate, openPglite } from "../../src/db";
import { type FakeOpenAiUpstream, startFakeOpenAiUpstream } from "../fakes/openai-upstream";
import { startTestApp, type TestApp, testConfig } from "../helpers/app";
import { memoryCaller, memoryMessageOf } from "../helpers/memory";

describe("Persistent memory end to end with the openai SDK, on embedded defaults", () => {
  let db: Database;
  let upstream: FakeOpenAiUpstream;
  let app: TestApp;

  const caller = (email: string) => memoryCaller(app, db, email);

  /** Everything recorded so far is in the vector store. */
  async function settle() {
    await app.services.usage.flush();
    await app.services.memory.outbox.drain();
  }

  const lastSent = () => upstream.received.filter((r) => r.path.endsWith("/chat/completions")).at(-1)!.body;

  beforeAll(async () => {
    db = await openPglite();
    await migrate(db);
    upstream = await startFakeOpenAiUpstream();
    app = await startTestApp({ db, config: testConfig({ OPENAI_BASE_URL: upstream.url }) });
  });

  afterAll(async () => {
    await app.close();
    await upstream.close();
    await db.close();
  });

  test("When conversation 1 states a fact, then conversation 2 gets it in a memory system message; with memory off it does not", async () => {
    const alice = await caller("alice-memory@example.com");
    const bob = await caller("bob-memory@example.com");

    await alice.client("conv-1").chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "My dog is called Biscuit and she is a golden retriever." }],
    });
    await bob.client("bob-1").chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "My cat is called Pepper and he hates the vacuum cleaner." }],
    });
    await settle();

    const { data, response } = await alice
      .client("conv-2")
      .chat.completions.create({
        model: "gpt-4o",
        messages: [
          { role: "system", content: "You are helpful." },
          { role: "user", content: "What is the name of my dog?" },
        ],
      })
      .withResponse();
    expect(data.choices[0]!.message.content).toBeTruthy();
    expect(response.headers.get("x-perpetual-memory")).toBe("ok");
    expect(Number(response.headers.get("x-perpetual-memories-used"))).toBeGreaterThan(0);
    const sent = lastSent();
    const messages = sent.messages as { role: string; content: string }[];
    expect(messages[0]).toEqual({ role: "system", content: "You are helpful." });
    const memory = memoryMessageOf(sent);
    expect(memory).toBe(messages[1]);
    expect(memory!.content).toContain("Biscuit");
    expect(memory!.content).toMatch(/\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}\]\nuser: My dog is called Biscuit/);
    // Bob's memories never reach Alice.
    expect(JSON.stringify(sent)).not.toContain("Pepper");

    const off = await alice
      .client("conv-3", "off")
      .chat.completions.create({
        model: "gpt-4o",
        messages: [{ role: "user", content: "What is the name of my dog?" }],
      })
      .withResponse();
    expect(off.response.headers.get("x-perpetual-memory")).toBe("off");
    expect(memoryMessageOf(lastSent())).toBeUndefined();

    await bob.client("bob-2").chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "What is the name of my dog?" }],
    });
    expect(JSON.stringify(lastSent())).not.toContain("Biscuit");

    // usage_logs records the retrieval.
    await app.services.usage.flush();
    const [row] = await db.query<{ retrieval_calls: number }>(
      "select retrieval_calls from usage_logs where user_id = $1 and conversation_id = 'conv-2'",
      [alice.userId],
    );
    expect(row!.retrieval_calls).toBe(1);
  });

  test("When a memory header has an unknown value, then the request is refused with a 400 naming it", async () => {
    const carol = await caller("carol-memory@example.com");
    const error = await carol
      .client("c-1", "sometimes")
      .chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("x-perpetual-memory");
  });

  /** POST /v1/memories as the caller. */
  const importMemories = (key: string, memories: unknown) =>
    fetch(`${app.baseUrl}/v1/memories`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ memories }),
    });

  test("When history is imported with its dates, then it is stored once with those dates, recalled under a dated heading, and only for its owner", async () => {
    const dana = await caller("dana-import@example.com");
    const erin = await caller("erin-import@example.com");
    const turns = [
      {
        id: "t1",
        role: "user",
        text: "I adopted a greyhound called Juniper from the shelter.",
        conversation_id: "old-chat",
        created_at: "2023-05-08T13:56:00Z",
      },
      { id: "t2", role: "assistant", text: "Congratulations on adopting Juniper!", conversation_id: "old-chat" },
    ];
    const first = await importMemories(dana.key, turns);
    expect(first.status).toBe(202);
    const body = (await first.json()) as { data: { id: string; status: string }[] };
    expect(body).toMatchObject({ object: "memory.import", queued: 2, duplicates: 0 });
    expect(body.data.map((d) => [d.id, d.status])).toEqual([
      ["t1", "queued"],
      ["t2", "queued"],
    ]);
    // A retried call: a turn still queued is reported as a duplicate; one already stored is queued again and
    // stored once all the same (a chunk's id is its text's), which the listing below checks.
    const again = (await (await importMemories(dana.key, turns)).json()) as { queued: number; duplicates: number };
    expect(again.queued + again.duplicates).toBe(2);
    // Another user's identical client ids are theirs: nothing collides across tenants.
    expect(await (await importMemories(erin.key, [{ ...turns[1], id: "t1" }])).json()).toMatchObject({ queued: 1 });
    await settle();

    const listed = await fetch(`${app.baseUrl}/v1/memories`, { headers: { authorization: `Bearer ${dana.key}` } });
    const page = (await listed.json()) as { data: { text: string }[] };
    const imported = page.data.find((m) => m.text.includes("Juniper from the shelter"));
    expect(imported).toMatchObject({
      conversation_id: "old-chat",
      role: "user",
      created_at: "2023-05-08T13:56:00.000Z",
    });
    expect(page.data.filter((m) => m.text.includes("greyhound"))).toHaveLength(1);

    await dana.client("new-chat").chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "What did I call the greyhound I adopted?" }],
    });
    expect(memoryMessageOf(lastSent())!.content).toContain(
      "[2023-05-08 13:56]\nuser: I adopted a greyhound called Juniper",
    );
    await erin.client("e-chat").chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "What did I call the greyhound I adopted?" }],
    });
    expect(JSON.stringify(lastSent())).not.toContain("Juniper from the shelter");
  });

  test.each([
    ["an empty batch", [], "memories"],
    ["a turn without text", [{ role: "user", text: "  " }], "memories.0.text"],
    ["a turn longer than 32,000 characters", [{ role: "user", text: "x".repeat(32_001) }], "memories.0.text"],
    ["an unknown role", [{ role: "system", text: "be evil" }], "memories.0.role"],
    [
      "a date in the future",
      [{ role: "user", text: "hi", created_at: "2999-01-01T00:00:00Z" }],
      "memories.0.created_at",
    ],
    ["a bad conversation id", [{ role: "user", text: "hi", conversation_id: "a b" }], "memories.0.conversation_id"],
    ["more than 1,000 turns", Array.from({ length: 1_001 }, () => ({ role: "user", text: "hi" })), "memories"],
  ])("When an import has %s, then it is refused with a 400 naming the field", async (name, memories, param) => {
    const frank = await caller(`frank-${name.replace(/\W+/g, "-")}@example.com`);
    const response = await importMemories(frank.key, memories);
    expect(response.status).toBe(400);
    expect(response.headers.get("x-request-id")).toBeTruthy();
    const { error } = (await response.json()) as { error: unknown };
    expect(error).toMatchObject({ type: "invalid_request_error", param });
    const queued = await db.query("select 1 from memory_outbox where user_id = $1", [frank.userId]);
    expect(queued).toHaveLength(0);
  });

  test("When nothing remembered is relevant, then no memory is injected and the header says irrelevant; the budget header is a ceiling", async () => {
    const gina = await caller("gina-gate@example.com");
    await gina.client("g-1").chat.completions.create({
      model: "gpt-4o",
      messages: [
        { role: "user", content: "I repaint my grandmother's pottery bowls every spring with a cobalt glaze." },
      ],
    });
    await settle();

    const offTopic = await gina
      .client("g-2")
      .chat.completions.create({
        model: "gpt-4o",
        messages: [{ role: "user", content: "What is the capital of Australia?" }],
      })
      .withResponse();
    expect(offTopic.response.headers.get("x-perpetual-memory")).toBe("irrelevant");
    const outcomes = await app.services.metrics.memoryRecalls.get();
    expect(outcomes.values.find((v) => v.labels.outcome === "irrelevant")?.value).toBeGreaterThanOrEqual(1);
    expect(offTopic.response.headers.get("x-perpetual-memory-tokens")).toBe("0");
    expect(memoryMessageOf(lastSent())).toBeUndefined();

    const question = {
      model: "gpt-4o",
      messages: [{ role: "user" as const, content: "What glaze do I use on the pottery bowls?" }],
    };
    const onTopic = await gina.client("g-3").chat.completions.create(question).withResponse();
    expect(onTopic.response.headers.get("x-perpetual-memory")).toBe("ok");
    expect(onTopic.response.headers.get("x-perpetual-memory-budget")).toBe("1000");
    const tokens = Number(onTopic.response.headers.get("x-perpetual-memory-tokens"));
    expect(tokens).toBeGreaterThan(0);
    // Relevant memory only, not a filled budget.
    expect(tokens).toBeLessThan(200);
    expect(memoryMessageOf(lastSent())!.content).toContain("cobalt glaze");

    const withBudget = (budget: string) =>
      gina
        .client("g-4")
        .chat.completions.create(question, { headers: { "x-perpetual-memory-budget": budget } })
        .withResponse();
    const zero = await withBudget("0");
    expect(zero.response.headers.get("x-perpetual-memory")).toBe("off");
    expect(memoryMessageOf(lastSent())).toBeUndefined();
    const tight = await withBudget("20");
    expect(tight.response.headers.get("x-perpetual-memory-budget")).toBe("20");
    expect(memoryMessageOf(lastSent())).toBeUndefined();
    const above = await withBudget("999999");
    expect(above.response.headers.get("x-perpetual-memory-budget")).toBe("1000");
    const refused = await withBudget("lots").catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
    expect((refused as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("x-perpetual-memory-budget");
  });
});
