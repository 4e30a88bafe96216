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
});
