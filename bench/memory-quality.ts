/**
 * `npm run bench:memory`: recall quality on LoCoMo (snap-research, CC BY-NC 4.0: read from
 * ../shared/datasets/locomo/locomo10.json or LOCOMO_PATH for internal evaluation only, never copied into the repo).
 *
 * Each conversation becomes one user. Its sessions are written in order through the product's write path: every
 * turn is queued in memory_outbox (embedded PGlite, the real migrations) as that session's conversation, dated with
 * the session's date, and the outbox worker chunks, embeds and stores it in the embedded store with the built-in
 * embedder. Speaker A's turns are the "user" role and B's the "assistant"; a turn's text is sent as a multi-party
 * chat client would: "Name: text", with a shared photo's caption as its alt text. Then every QA item of categories
 * 1-4 is asked through MemoryService.recall, the pipeline's own call, and we count the evidence turns (dia_id)
 * whose text is in the injected memory message, at budgets of 500, 1,000 and 2,000 tokens.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../src/config";
import { migrate, openPglite } from "../src/db";
import { createUser } from "../src/identity";
import { createLogger } from "../src/log";
import { MemoryService } from "../src/memory";
import { EmbeddedMemoryStore } from "../src/memory/embedded-store";
import { WordVectorEmbedder } from "../src/memory/embedders/word-vectors";
import { createMetrics } from "../src/metrics";

const DATASET = process.env.LOCOMO_PATH ?? join(__dirname, "..", "..", "shared", "datasets", "locomo", "locomo10.json");
const BUDGETS = [500, 1_000, 2_000];
const CATEGORIES: Record<number, string> = { 1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop" };

interface Turn {
  speaker: string;
  dia_id: string;
  text: string;
  blip_caption?: string;
}
interface Sample {
  sample_id: string;
  conversation: Record<string, string | Turn[]>;
  qa: { question: string; category: number; evidence?: string[] }[];
}

const MONTHS = "january february march april may june july august september october november december".split(" ");

/** LoCoMo's "1:56 pm on 8 May, 2023" as an ISO timestamp. */
function sessionDate(text: string): Date {
  const m = /(\d+):(\d+)\s*(am|pm)\s+on\s+(\d+)\s+(\w+),?\s+(\d{4})/i.exec(text);
  if (!m) throw new Error(`unreadable session date: ${text}`);
  const hour = (Number(m[1]) % 12) + (m[3]!.toLowerCase() === "pm" ? 12 : 0);
  const month = MONTHS.indexOf(m[5]!.toLowerCase());
  return new Date(Date.UTC(Number(m[6]), month, Number(m[4]), hour, Number(m[2])));
}

const turnText = (t: Turn) => `${t.speaker}: ${t.text}${t.blip_caption ? ` (shares a photo: ${t.blip_caption})` : ""}`;

async function main() {
  if (!existsSync(DATASET)) {
    throw new Error(`LoCoMo not found at ${DATASET}: set LOCOMO_PATH to locomo10.json (internal evaluation only)`);
  }
  const samples = JSON.parse(readFileSync(DATASET, "utf8")) as Sample[];
  const dir = mkdtempSync(join(tmpdir(), "perpetual-locomo-"));
  const db = await openPglite();
  await migrate(db);
  const embedder = new WordVectorEmbedder();
  const store = new EmbeddedMemoryStore(dir, "locomo", embedder.dimensions);
  const config = loadConfig({ NODE_ENV: "test", DATA_DIR: dir });
  const logger = createLogger({ level: "error", format: "json" });
  const metrics = createMetrics({ usagePending: () => 0 });
  const services = BUDGETS.map(
    (tokenBudget) =>
      new MemoryService({
        store,
        embedder,
        db,
        logger,
        metrics,
        settings: { ...config.memory, tokenBudget, recallTimeoutMs: 10_000 },
      }),
  );
  await store.ready();

  const writeStarted = performance.now();
  let turnsWritten = 0;
  const users = new Map<string, { userId: string; textOf: Map<string, string> }>();
  for (const sample of samples) {
    const user = await createUser(db, `${sample.sample_id}@locomo.test`, "free");
    const textOf = new Map<string, string>();
    users.set(sample.sample_id, { userId: user.id, textOf });
    const speakerA = sample.conversation.speaker_a as string;
    for (let n = 1; Array.isArray(sample.conversation[`session_${n}`]); n++) {
      const turns = sample.conversation[`session_${n}`] as Turn[];
      const start = sessionDate(sample.conversation[`session_${n}_date_time`] as string).getTime();
      const rows = turns.map((turn, i) => {
        textOf.set(turn.dia_id, turnText(turn));
        return {
          request_id: `${sample.sample_id}:${turn.dia_id}`,
          user_id: user.id,
          conversation_id: `session_${n}`,
          messages: [{ role: turn.speaker === speakerA ? "user" : "assistant", content: turnText(turn) }],
          // A turn every 30 seconds from the session's start keeps the order within a session.
          created_at: new Date(start + i * 30_000).toISOString(),
        };
      });
      await db.query(
        `insert into memory_outbox (request_id, user_id, conversation_id, messages, created_at)
         select x.request_id, x.user_id, x.conversation_id, x.messages, x.created_at
           from jsonb_to_recordset($1::jsonb) as x(request_id text, user_id uuid, conversation_id text,
                                                  messages jsonb, created_at timestamptz)`,
        [JSON.stringify(rows)],
      );
      turnsWritten += rows.length;
    }
  }
  while ((await services[0]!.outbox.pending()) > 0) await services[0]!.outbox.drain();
  const writeSeconds = (performance.now() - writeStarted) / 1000;

  // found[budget][category] and totals, over evidence turns.
  const found = BUDGETS.map(() => new Map<number, number>());
  const total = new Map<number, number>();
  let questions = 0;
  let unknownEvidence = 0;
  const recallTimes: number[] = [];
  for (const sample of samples) {
    const { userId, textOf } = users.get(sample.sample_id)!;
    for (const qa of sample.qa) {
      if (!CATEGORIES[qa.category]) continue;
      const evidence = (qa.evidence ?? []).flatMap((e) => e.split(/[;,]\s*/)).map((e) => e.trim());
      const known = evidence.filter((e) => textOf.has(e));
      unknownEvidence += evidence.length - known.length;
      if (known.length === 0) continue;
      questions++;
      total.set(qa.category, (total.get(qa.category) ?? 0) + known.length);
      const messages = [{ role: "user", content: qa.question }];
      for (const [b, memory] of services.entries()) {
        const started = performance.now();
        const recall = await memory.recall(userId, messages, { mode: "on", scope: "user" }, null);
        recallTimes.push(performance.now() - started);
        const injected = recall.message?.content ?? "";
        const hits = known.filter((e) => injected.includes(textOf.get(e)!)).length;
        found[b]!.set(qa.category, (found[b]!.get(qa.category) ?? 0) + hits);
      }
    }
  }
  await store.close();
  await db.close();
  rmSync(dir, { recursive: true, force: true });

  const share = (b: number, categories: number[]) => {
    const f = categories.reduce((s, c) => s + (found[b]!.get(c) ?? 0), 0);
    const t = categories.reduce((s, c) => s + (total.get(c) ?? 0), 0);
    return (f / t).toFixed(3);
  };
  const all = Object.keys(CATEGORIES).map(Number);
  console.log(`\nLoCoMo evidence recall (${questions} questions of categories 1-4, ${samples.length} conversations)`);
  console.log(`| category | evidence turns | ${BUDGETS.map((b) => `${b.toLocaleString("en")} tokens`).join(" | ")} |`);
  console.log(`|---|---:|${BUDGETS.map(() => "---:").join("|")}|`);
  for (const c of all) {
    console.log(`| ${c} ${CATEGORIES[c]} | ${total.get(c)} | ${BUDGETS.map((_, b) => share(b, [c])).join(" | ")} |`);
  }
  const totalTurns = all.reduce((s, c) => s + (total.get(c) ?? 0), 0);
  console.log(`| overall | ${totalTurns} | ${BUDGETS.map((_, b) => share(b, all)).join(" | ")} |`);
  console.log(
    `\nReference (plain BM25 over single turns): 0.595 | 0.651 | 0.702. Target: ≥ 0.80 at 1,000 tokens, ≥ 0.50 multi-hop.`,
  );
  recallTimes.sort((a, b) => a - b);
  console.log(
    `Wrote ${turnsWritten} turns through the outbox in ${writeSeconds.toFixed(1)} s; recall p50 ${recallTimes[Math.floor(recallTimes.length / 2)]!.toFixed(2)} ms; ${unknownEvidence} malformed evidence ids skipped.`,
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
