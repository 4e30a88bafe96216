import { z } from "zod";
import { ApiError, InvalidRequestError, NotFoundError, ServiceUnavailableError } from "../../errors";
import { InvalidCursorError, type MemoryService, REMEMBERED_CHARS } from "../../memory";
import { idParams } from "../../validation";
import { ApiRouter, json } from "../api-router";
import { CONVERSATION_ID } from "../conversation";
import { principalOf } from "../guards";
import { MemoryView, memoryJson } from "./views";

const conversationId = z
  .string()
  .regex(CONVERSATION_ID, { message: "must be 1-200 letters, digits or _.:-" })
  .meta({ description: "A conversation id, as sent in x-perpetual-conversation-id." });

const listQuery = z.strictObject({
  conversation_id: conversationId.optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  after: z.string().max(4000).optional().meta({ description: "`next_cursor` of the previous page." }),
});

const searchBody = z
  .strictObject({
    query: z.string().trim().min(1).max(8000),
    limit: z.int().min(1).max(50).default(10),
    conversation_id: conversationId.optional(),
  })
  .meta({ id: "MemorySearchRequest" });

const deleteQuery = z
  .strictObject({
    conversation_id: conversationId.optional(),
    all: z.enum(["true"]).optional().meta({ description: "`true` deletes every memory of the caller." }),
  })
  .refine((q) => (q.conversation_id === undefined) !== (q.all === undefined), {
    message: "give either conversation_id or all=true",
  });

/** How many turns one import call takes: a long chat history is imported in pages of this size. */
const IMPORT_BATCH = 1_000;
/** Clock skew allowed for an imported turn's date. */
const FUTURE_SKEW_MS = 5 * 60_000;

const importBody = z
  .strictObject({
    memories: z
      .array(
        z.strictObject({
          role: z.enum(["user", "assistant"]),
          text: z
            .string()
            .max(REMEMBERED_CHARS)
            .refine((t) => t.trim().length > 0, { message: "must not be empty" })
            .meta({ description: `The turn's text (at most ${REMEMBERED_CHARS.toLocaleString("en")} characters).` }),
          created_at: z.iso
            .datetime({ offset: true })
            .refine((t) => Date.parse(t) <= Date.now() + FUTURE_SKEW_MS, { message: "must not be in the future" })
            .optional()
            .meta({
              description: "When the turn was said (ISO 8601); recall shows it in the dated heading. Default: now.",
            }),
          conversation_id: conversationId.optional(),
          id: z
            .string()
            .min(1)
            .max(200)
            .optional()
            .meta({ description: "Your id for the turn: importing the same id again does not queue it twice." }),
        }),
      )
      .min(1)
      .max(IMPORT_BATCH),
  })
  .meta({ id: "MemoryImportRequest" });

const ImportResult = z
  .strictObject({
    object: z.literal("memory.import"),
    queued: z.int().nonnegative().meta({ description: "Turns queued for memory by this call." }),
    duplicates: z.int().nonnegative().meta({ description: "Turns whose id was already queued." }),
    data: z.array(
      z.strictObject({
        id: z.string().nullable().meta({ description: "Your id for the turn, if you gave one." }),
        request_id: z.string().meta({ description: "The `request_id` the turn's memories will carry." }),
        status: z.enum(["queued", "duplicate"]),
      }),
    ),
  })
  .meta({ id: "MemoryImportResult" });

const MemoryPageView = z
  .strictObject({
    object: z.literal("list"),
    data: z.array(MemoryView),
    has_more: z.boolean(),
    next_cursor: z.string().nullable(),
  })
  .meta({ id: "MemoryPage" });

const ScoredMemoryView = MemoryView.extend({
  score: z.number().meta({ description: "Reciprocal-rank-fusion score of the dense and BM25 rankings." }),
}).meta({ id: "ScoredMemory" });

const SearchResultView = z
  .strictObject({ object: z.literal("list"), data: z.array(ScoredMemoryView) })
  .meta({ id: "MemorySearchResult" });

const DeletedMemory = z
  .strictObject({ id: z.uuid(), object: z.literal("memory"), deleted: z.literal(true) })
  .meta({ id: "DeletedMemory" });

const DeletedMemories = z
  .strictObject({
    object: z.literal("memory.deleted"),
    deleted: z.int().nonnegative().meta({ description: "Stored memories deleted." }),
    pending_deleted: z
      .int()
      .nonnegative()
      .meta({ description: "Exchanges deleted before they were written into memory." }),
  })
  .meta({ id: "DeletedMemories" });

/** A store failure is the vector database being away: 503, never a 500. */
async function fromStore<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof ApiError) throw error;
    if (error instanceof InvalidCursorError)
      throw new InvalidRequestError("Invalid 'after': not a cursor of this list.", {
        code: "invalid_value",
        param: "after",
      });
    throw new ServiceUnavailableError("The memory store is unavailable; try again shortly.", {
      code: "memory_unavailable",
    });
  }
}

/** The caller's own memories: list, search, delete. The store reaches only the caller's points (tenant filter). */
export function memoryRoutes({ memory }: { memory: MemoryService }) {
  const api = new ApiRouter("Memory");

  api.route(
    {
      method: "get",
      path: "/memories",
      summary: "List the caller's memories, newest first",
      access: "api_key",
      query: listQuery,
      responses: { 200: { description: "A page of memories.", content: json(MemoryPageView) } },
      errors: [503],
    },
    async ({ query: q }, res) => {
      const { userId } = principalOf(res);
      const page = await fromStore(
        memory.list(userId, { conversationId: q.conversation_id, limit: q.limit, after: q.after }),
      );
      res.json({
        object: "list",
        data: page.data.map(memoryJson),
        has_more: page.next !== undefined,
        next_cursor: page.next ?? null,
      });
    },
  );

  api.route(
    {
      method: "post",
      path: "/memories",
      summary: "Import existing history into the caller's memory",
      description:
        `Up to ${IMPORT_BATCH.toLocaleString("en")} turns per call, each with its own date and conversation. They go ` +
        "through the same outbox as chat write-back (chunked, embedded and stored within about a second; durable " +
        "once this call answers). Text identical to a stored memory of the same conversation and role is stored once.",
      access: "api_key",
      body: importBody,
      responses: { 202: { description: "Queued for memory.", content: json(ImportResult) } },
      errors: [503],
    },
    async ({ body }, res) => {
      const { userId } = principalOf(res);
      const results = await memory.import(
        userId,
        body.memories.map((m) => ({
          role: m.role,
          text: m.text,
          createdAt: m.created_at,
          conversationId: m.conversation_id,
          clientId: m.id,
        })),
      );
      const queued = results.filter((r) => r.queued).length;
      res.status(202).json({
        object: "memory.import",
        queued,
        duplicates: results.length - queued,
        data: results.map((r, i) => ({
          id: body.memories[i]!.id ?? null,
          request_id: r.requestId,
          status: r.queued ? "queued" : "duplicate",
        })),
      });
    },
  );

  api.route(
    {
      method: "post",
      path: "/memories/search",
      summary: "Search the caller's memories (hybrid dense + BM25, as recall does)",
      access: "api_key",
      body: searchBody,
      responses: { 200: { description: "Best matches first.", content: json(SearchResultView) } },
      errors: [503],
    },
    async ({ body }, res) => {
      const { userId } = principalOf(res);
      const found = await fromStore(
        memory.find(userId, body.query, { limit: body.limit, conversationId: body.conversation_id }),
      );
      res.json({ object: "list", data: found.map((f) => ({ ...memoryJson(f.memory), score: f.score })) });
    },
  );

  api.route(
    {
      method: "delete",
      path: "/memories/:id",
      summary: "Delete one of the caller's memories",
      access: "api_key",
      params: idParams("memory"),
      responses: { 200: { description: "Deleted.", content: json(DeletedMemory) } },
      errors: [404, 503],
    },
    async ({ params: { id } }, res) => {
      const { stored } = await fromStore(memory.forget(principalOf(res).userId, { ids: [id] }));
      if (stored === 0) throw new NotFoundError(`No memory found with id '${id}'.`, { code: "memory_not_found" });
      res.json({ id, object: "memory", deleted: true });
    },
  );

  api.route(
    {
      method: "delete",
      path: "/memories",
      summary: "Delete the caller's memories of one conversation (or all of them)",
      access: "api_key",
      query: deleteQuery,
      responses: { 200: { description: "How many were deleted.", content: json(DeletedMemories) } },
      errors: [503],
    },
    async ({ query: q }, res) => {
      const which = q.conversation_id === undefined ? { all: true as const } : { conversationId: q.conversation_id };
      const { stored, pending } = await fromStore(memory.forget(principalOf(res).userId, which));
      res.json({ object: "memory.deleted", deleted: stored, pending_deleted: pending });
    },
  );

  return api;
}
