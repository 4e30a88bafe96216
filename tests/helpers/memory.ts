import { randomBytes } from "node:crypto";
import OpenAI from "openai";
import type { Database } from "../../src/db";
import { createApiKey, createUser } from "../../src/identity";
import { WordVectorEmbedder } from "../../src/memory/embedders/word-vectors";
import { memoryId } from "../../src/memory/outbox";
import { bm25Document, bm25Query } from "../../src/memory/sparse";
import type { MemorySearch, NewMemory } from "../../src/memory/store";
import type { TestApp } from "./app";

export const embedder = new WordVectorEmbedder();

/** A chunk as the outbox stores it, embedded with the built-in embedder. */
export function memoryChunk(
  text: string,
  requestId: string,
  { index = 0, conversationId = "c1", createdAt = "2026-01-01T00:00:00.000Z" } = {},
): NewMemory {
  return {
    id: memoryId(requestId, index),
    conversationId,
    role: index % 2 === 0 ? "user" : "assistant",
    text,
    createdAt,
    model: "gpt-4o",
    requestId,
    dense: embedder.embedOne(text),
    sparse: bm25Document(text),
  };
}

export const searchFor = (text: string, conversationId?: string): MemorySearch => ({
  dense: embedder.embedOne(text),
  sparse: bm25Query(text),
  limit: 10,
  ...(conversationId && { conversationId }),
});

/** A user with an API key and an OpenAI key, and an SDK client per conversation (optionally with a memory mode). */
export async function memoryCaller(app: TestApp, db: Database, email: string) {
  const user = await createUser(db, email, "enterprise");
  const key = (await createApiKey(db, user.id)).key;
  await app.services.providerKeys.add(user.id, "openai", `sk-proj-${randomBytes(12).toString("hex")}`);
  const client = (conversation: string, memory?: string) =>
    new OpenAI({
      apiKey: key,
      baseURL: `${app.baseUrl}/v1`,
      maxRetries: 0,
      defaultHeaders: {
        "x-perpetual-conversation-id": conversation,
        ...(memory && { "x-perpetual-memory": memory }),
      },
    });
  return { userId: user.id, key, client };
}

/** The memory system message among the messages an upstream received, if any. */
export const memoryMessageOf = (body: Record<string, unknown>) =>
  (body.messages as { role: string; content: string }[]).find(
    (m) => m.role === "system" && m.content.startsWith("Excerpts from earlier conversations"),
  );
