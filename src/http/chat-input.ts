import type { Request, Response } from "express";
import type { ChatInput, ChatPipeline } from "../chat/pipeline";
import type { Principal } from "../identity";
import type { MemoryService } from "../memory";
import { clientGoneSignal } from "./client-signal";
import { CONVERSATION_HEADER, conversationIdOf } from "./conversation";
import { requestIdsOf } from "./request-context";

/**
 * The pipeline input of a chat-shaped request, built the same way by every route that runs one (chat completions,
 * responses, Anthropic messages): the caller, the request's ids and conversation (header, else the client body's
 * `metadata.conversation_id`), memory and cache controls from headers, the client's address, and a signal that
 * aborts when the client goes away.
 */
export function chatInputFrom(
  req: Request,
  res: Response,
  { chat, memory }: { chat: ChatPipeline; memory: MemoryService },
  { principal, body, endpoint }: { principal: Principal; body: unknown; endpoint: string },
): ChatInput {
  const header = (name: string) => req.get(name);
  return {
    principal,
    body,
    ...requestIdsOf(res),
    conversationId: conversationIdOf(req.get(CONVERSATION_HEADER), req.body),
    endpoint,
    memory: memory.controlsFrom(header, principal.tier, principal.settings?.memoryMode),
    cache: chat.cacheControlsFrom(header, principal),
    clientAddress: req.ip,
    signal: clientGoneSignal(res),
  };
}
