import { createServer, type Server, type ServerResponse } from "node:http";
import type { ReceivedRequest } from "./openai-upstream";

/**
 * An Anthropic Messages API server speaking the real wire format: the key (x-api-key or bearer) and
 * `anthropic-version` headers,
 * message objects, SSE with named events (message_start … message_stop) and Anthropic's error bodies
 * {"type": "error", "error": {"type", "message"}}. Behaviour by model name: claude-fail-429 (retry-after: 11),
 * claude-overloaded (529), claude-tool (answers with a tool_use block); anything else echoes the last user text.
 */
export interface FakeAnthropicUpstream {
  url: string;
  received: Array<ReceivedRequest & { apiKey: string | undefined; version: string | undefined }>;
  close(): Promise<void>;
}

export const FAKE_ANTHROPIC_USAGE = {
  input_tokens: 20,
  output_tokens: 9,
  cache_read_input_tokens: 5,
  cache_creation_input_tokens: 2,
};

function sendError(
  res: ServerResponse,
  status: number,
  type: string,
  message: string,
  headers: Record<string, string> = {},
) {
  res.writeHead(status, { "content-type": "application/json", "request-id": "req_fake", ...headers });
  res.end(JSON.stringify({ type: "error", error: { type, message } }));
}

function lastUserText(body: Record<string, unknown>): string {
  const messages = (body.messages as Array<{ role: string; content: unknown }>) ?? [];
  const last = [...messages].reverse().find((m) => m.role === "user");
  if (!last) return "";
  if (typeof last.content === "string") return last.content;
  return ((last.content as Array<{ type: string; text?: string }>) ?? [])
    .map((b) => (b.type === "text" ? (b.text ?? "") : ""))
    .join("");
}

export async function startFakeAnthropicUpstream(): Promise<FakeAnthropicUpstream> {
  const received: FakeAnthropicUpstream["received"] = [];
  const server: Server = createServer(async (req, res) => {
    let text = "";
    for await (const chunk of req) text += chunk;
    const body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    const path = new URL(req.url ?? "/", "http://x").pathname;
    // Older SDKs send x-api-key; current ones send Authorization: Bearer. The API accepts both.
    const apiKey =
      (req.headers["x-api-key"] as string | undefined) ?? /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    received.push({
      path,
      authorization: req.headers.authorization,
      apiKey,
      version: req.headers["anthropic-version"] as string | undefined,
      body,
    });
    if (path === "/v1/messages/count_tokens") {
      if (!apiKey) return sendError(res, 401, "authentication_error", "x-api-key or authorization header is required");
      if (body.max_tokens !== undefined)
        return sendError(res, 400, "invalid_request_error", "max_tokens: Extra inputs are not permitted");
      // A deterministic stand-in for Anthropic's tokenizer: one token per 4 characters of the request, plus 7.
      const { model: _model, ...counted } = body;
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify({ input_tokens: 7 + Math.ceil(JSON.stringify(counted).length / 4) }));
    }
    if (path !== "/v1/messages") return sendError(res, 404, "not_found_error", `Unknown path ${path}`);
    if (!apiKey) return sendError(res, 401, "authentication_error", "x-api-key or authorization header is required");
    if (typeof body.max_tokens !== "number")
      return sendError(res, 400, "invalid_request_error", "max_tokens: Field required");
    const model = String(body.model);
    if (model === "claude-fail-429")
      return sendError(res, 429, "rate_limit_error", "Number of requests has exceeded your rate limit", {
        "retry-after": "11",
      });
    if (model === "claude-overloaded") return sendError(res, 529, "overloaded_error", "Overloaded");

    const id = `msg_fake${received.length}`;
    const reply = `Echo: ${lastUserText(body)}`;
    const tool = model === "claude-tool";
    const content = tool
      ? [
          { type: "text", text: "Let me check." },
          { type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Paris" } },
        ]
      : [{ type: "text", text: reply }];
    const stopReason = tool ? "tool_use" : "end_turn";

    if (body.stream !== true) {
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(
        JSON.stringify({
          id,
          type: "message",
          role: "assistant",
          model,
          content,
          stop_reason: stopReason,
          stop_sequence: null,
          usage: FAKE_ANTHROPIC_USAGE,
        }),
      );
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    const send = (event: Record<string, unknown>) =>
      res.write(`event: ${String(event.type)}\ndata: ${JSON.stringify(event)}\n\n`);
    send({
      type: "message_start",
      message: {
        id,
        type: "message",
        role: "assistant",
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { ...FAKE_ANTHROPIC_USAGE, output_tokens: 1 },
      },
    });
    content.forEach((block, index) => {
      if (block.type === "text") {
        send({ type: "content_block_start", index, content_block: { type: "text", text: "" } });
        for (const piece of String(block.text).match(/\S+\s*/g) ?? [])
          send({ type: "content_block_delta", index, delta: { type: "text_delta", text: piece } });
      } else {
        send({
          type: "content_block_start",
          index,
          content_block: { type: "tool_use", id: block.id, name: block.name, input: {} },
        });
        send({ type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json: '{"city":' } });
        send({ type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json: ' "Paris"}' } });
      }
      send({ type: "content_block_stop", index });
    });
    send({
      type: "message_delta",
      delta: { stop_reason: stopReason, stop_sequence: null },
      usage: { output_tokens: FAKE_ANTHROPIC_USAGE.output_tokens },
    });
    send({ type: "message_stop" });
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
