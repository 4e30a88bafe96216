import { Router } from "express";
import type { ChatPipeline } from "../../chat/pipeline";
import type { Targets } from "../../chat/targets";
import { notFound } from "../../errors";
import type { Authenticator } from "../../identity";
import type { Logger } from "../../log";
import { principalOf, requireUser } from "../authentication";
import { clientGoneSignal } from "../client-signal";
import { toApiError } from "../error-handler";
import { requestIdOf } from "../request-context";
import { SseWriter } from "../sse";

export interface OpenAiRoutesDeps {
  authenticator: Authenticator;
  targets: Targets;
  chat: ChatPipeline;
  logger: Logger;
}

const CONVERSATION_HEADER = "x-perpetual-conversation-id";

function conversationIdOf(value: string | undefined): string | null {
  return value && /^[\w.:-]{1,200}$/.test(value) ? value : null;
}

/** The OpenAI-compatible endpoints: thin adapters between HTTP and the chat pipeline. */
export function openAiRoutes({ authenticator, targets, chat, logger }: OpenAiRoutesDeps): Router {
  const router = Router();
  router.use(["/chat/completions", "/embeddings", "/models"], requireUser(authenticator));

  router.post("/chat/completions", async (req, res) => {
    const signal = clientGoneSignal(res);
    const result = await chat.run({
      principal: principalOf(res),
      body: req.body,
      requestId: requestIdOf(res),
      conversationId: conversationIdOf(req.get(CONVERSATION_HEADER)),
      endpoint: "/v1/chat/completions",
      signal,
    });
    res.set(result.headers);
    if (!result.stream) {
      res.json(result.completion);
      return;
    }
    const sse = new SseWriter(res);
    sse.open();
    try {
      for await (const chunk of result.chunks) {
        if (sse.closed) break;
        await sse.data(chunk);
      }
      sse.end("data: [DONE]\n\n");
    } catch (error) {
      // Headers are gone: the error becomes one data event (the SDKs raise it as an APIError), then the end.
      if (signal.aborted) return;
      await sse.data(toApiError(error, logger).toBody());
      sse.end();
    }
  });

  router.post("/embeddings", async (req, res) => {
    const { headers, response } = await chat.embed({
      principal: principalOf(res),
      body: req.body,
      requestId: requestIdOf(res),
      conversationId: null,
      endpoint: "/v1/embeddings",
      signal: clientGoneSignal(res),
    });
    res.set(headers).json(response);
  });

  router.get("/models", async (_req, res) => {
    const models = await targets.models(principalOf(res));
    res.json({
      object: "list",
      data: models.map((m) => ({ id: m.id, object: "model", created: 0, owned_by: m.owned_by })),
    });
  });

  router.get("/models/:model", async (req, res) => {
    const model = (await targets.models(principalOf(res))).find((m) => m.id === req.params.model);
    if (!model) {
      throw notFound(
        `The model '${req.params.model}' does not exist or you do not have access to it.`,
        "model_not_found",
        "model",
      );
    }
    res.json({ id: model.id, object: "model", created: 0, owned_by: model.owned_by });
  });

  return router;
}
