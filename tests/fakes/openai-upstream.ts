import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";

/**
 * An OpenAI-compatible upstream (OpenAI, Groq, vLLM, …) that speaks the real wire format: JSON completions, SSE
 * chunks with `data: [DONE]`, the usage chunk when `stream_options.include_usage` is set, OpenAI error bodies.
 * The model name picks a behaviour, so one server covers every case:
 *   fail-400 | fail-401 | fail-429 (retry-after: 7) | fail-500 | slow-first-byte (300 ms) | slow-stream (40 ms per
 *   chunk) | cut-mid-stream (socket destroyed) | error-mid-stream (a data: {"error"} event) | hang | no-usage |
 *   tool-call | bad-json (200 with a truncated JSON body) | echo-key-401 / echo-key-mid-stream (the caller's key
 *   echoed in an error, before and after the first byte) | linger-after-done (the stream's response never ends after
 *   its [DONE]). Anything else echoes the last user message.
 * Every request is recorded (path, authorization header, body) so tests can assert what left Perpetual.
 */
export interface ReceivedRequest {
  path: string;
  authorization: string | undefined;
  /** W3C trace context, when the caller propagates one. */
  traceparent?: string;
  body: Record<string, unknown>;
}

export interface FakeOpenAiUpstream {
  url: string;
  received: ReceivedRequest[];
  /** When set, only these bearer keys are accepted (401 invalid_api_key otherwise). */
  acceptedKeys: Set<string> | undefined;
  /** Sockets currently open from Perpetual. */
  openConnections(): number;
  /** Sockets Perpetual has opened since the start. */
  acceptedConnections(): number;
  /** Streamed responses whose reader went away before the end (Perpetual aborted the call). */
  abortedStreams(): number;
  close(): Promise<void>;
}

export const FAKE_USAGE = {
  prompt_tokens: 11,
  completion_tokens: 7,
  total_tokens: 18,
  prompt_tokens_details: { cached_tokens: 3 },
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sendError(
  res: ServerResponse,
  status: number,
  type: string,
  message: string,
  code: string | null,
  headers: Record<string, string> = {},
) {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify({ error: { message, type, param: null, code } }));
}

function lastUserText(body: Record<string, unknown>): string {
  const messages = (body.messages as Array<{ role: string; content: unknown }>) ?? [];
  const last = [...messages].reverse().find((m) => m.role === "user");
  if (!last) return "";
  if (typeof last.content === "string") return last.content;
  return ((last.content as Array<{ type: string; text?: string }>) ?? []).map((p) => p.text ?? "").join("");
}

/** Legacy /v1/completions as OpenAI sends them: `text_completion` objects, streamed as chunks of the same object
 * type ending with `[DONE]`, the usage chunk (empty choices) when include_usage is asked. Echoes the prompt. */
function legacyCompletion(body: Record<string, unknown>, res: ServerResponse): void {
  const model = String(body.model);
  if (model === "fail-400") {
    sendError(res, 400, "invalid_request_error", "Invalid value for 'temperature'.", "invalid_value");
    return;
  }
  const prompt = Array.isArray(body.prompt) ? body.prompt.join("\n") : String(body.prompt);
  const base = { id: "cmpl-fake", object: "text_completion", created: 1_700_000_000, model };
  const usage = { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 };
  const choice = (text: string, finish: string | null) => ({ index: 0, text, logprobs: null, finish_reason: finish });
  if (body.stream !== true) {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ ...base, choices: [choice(` completed: ${prompt}`, "stop")], usage }));
    return;
  }
  res.writeHead(200, { "content-type": "text/event-stream" });
  const send = (payload: unknown) => res.write(`data: ${JSON.stringify(payload)}\n\n`);
  for (const piece of [" completed:", ` ${prompt}`]) send({ ...base, choices: [choice(piece, null)] });
  send({ ...base, choices: [choice("", "stop")] });
  if ((body.stream_options as { include_usage?: boolean } | undefined)?.include_usage) {
    send({ ...base, choices: [], usage });
  }
  res.end("data: [DONE]\n\n");
}

/** What the fake /v1/responses reports as usage (distinct from the chat numbers, so tests see which path ran). */
export const FAKE_RESPONSES_USAGE = {
  input_tokens: 13,
  input_tokens_details: { cached_tokens: 2 },
  output_tokens: 5,
  output_tokens_details: { reasoning_tokens: 1 },
  total_tokens: 18,
};

/**
 * OpenAI's /v1/responses as it answers: a Response object, or typed events (`event:` and `data:` lines with
 * sequence numbers) from response.created to response.completed. Echoes the last user input text; a `web_search`
 * tool adds a web_search_call item first; model fail-400 is refused; error-mid-stream ends with response.failed.
 */
function responsesApi(body: Record<string, unknown>, res: ServerResponse): void {
  const model = String(body.model);
  if (model === "fail-400") {
    sendError(res, 400, "invalid_request_error", "Invalid value for 'temperature'.", "invalid_value");
    return;
  }
  const input = body.input as string | Array<{ role?: string; content?: unknown }>;
  const lastUser = typeof input === "string" ? input : [...input].reverse().find((i) => i.role === "user")?.content;
  const text = `Echo: ${typeof lastUser === "string" ? lastUser : ((lastUser as Array<{ text?: string }>) ?? []).map((p) => p.text ?? "").join("")}`;
  const searching = ((body.tools as Array<{ type: string }>) ?? []).some((t) => t.type === "web_search");
  const base = {
    id: "resp_upstream0001",
    object: "response",
    created_at: 1_700_000_000,
    model,
    store: body.store ?? true,
    tools: body.tools ?? [],
    instructions: null,
    previous_response_id: null,
    metadata: {},
  };
  const search = {
    type: "web_search_call",
    id: "ws_upstream1",
    status: "completed",
    action: { type: "search", query: "q" },
  };
  const message = (t: string, status: string) => ({
    type: "message",
    id: "msg_upstream1",
    status,
    role: "assistant",
    content: status === "in_progress" ? [] : [{ type: "output_text", text: t, annotations: [], logprobs: [] }],
  });
  const output = [...(searching ? [search] : []), message(text, "completed")];
  if (body.stream !== true) {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ ...base, status: "completed", output, usage: FAKE_RESPONSES_USAGE }));
    return;
  }
  res.writeHead(200, { "content-type": "text/event-stream" });
  let sequence = 0;
  const send = (type: string, fields: Record<string, unknown>) =>
    res.write(`event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence++, ...fields })}\n\n`);
  send("response.created", { response: { ...base, status: "in_progress", output: [], usage: null } });
  send("response.in_progress", { response: { ...base, status: "in_progress", output: [], usage: null } });
  const at = searching ? 1 : 0;
  if (searching) {
    send("response.output_item.added", { output_index: 0, item: { ...search, status: "in_progress" } });
    send("response.output_item.done", { output_index: 0, item: search });
  }
  send("response.output_item.added", { output_index: at, item: message("", "in_progress") });
  const part = { item_id: "msg_upstream1", output_index: at, content_index: 0 };
  send("response.content_part.added", {
    ...part,
    part: { type: "output_text", text: "", annotations: [], logprobs: [] },
  });
  for (const [i, piece] of (text.match(/\S+\s*/g) ?? []).entries()) {
    send("response.output_text.delta", { ...part, delta: piece, logprobs: [] });
    if (i === 1 && model === "error-mid-stream") {
      send("response.failed", {
        response: {
          ...base,
          status: "failed",
          output: [],
          error: { code: "server_error", message: "The model crashed mid-stream." },
        },
      });
      res.end();
      return;
    }
  }
  send("response.output_text.done", { ...part, text, logprobs: [] });
  send("response.content_part.done", { ...part, part: { type: "output_text", text, annotations: [], logprobs: [] } });
  send("response.output_item.done", { output_index: at, item: message(text, "completed") });
  send("response.completed", { response: { ...base, status: "completed", output, usage: FAKE_RESPONSES_USAGE } });
  res.end();
}

export async function startFakeOpenAiUpstream(
  options: { record?: boolean; port?: number } = {},
): Promise<FakeOpenAiUpstream> {
  const record = options.record ?? true;
  const received: ReceivedRequest[] = [];
  const sockets = new Set<import("node:net").Socket>();
  let accepted = 0;
  const state: { acceptedKeys: Set<string> | undefined } = { acceptedKeys: undefined };
  let aborted = 0;

  const server: Server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    let text = "";
    for await (const chunk of req) text += chunk;
    const body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (record)
      received.push({
        path,
        authorization: req.headers.authorization,
        traceparent: req.headers.traceparent as string | undefined,
        body,
      });
    const key = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    if (state.acceptedKeys && (!key || !state.acceptedKeys.has(key))) {
      return sendError(
        res,
        401,
        "invalid_request_error",
        `Incorrect API key provided: ${key?.slice(0, 3)}***${key?.slice(-4)}.`,
        "invalid_api_key",
      );
    }
    if (req.method === "GET" && path.endsWith("/models")) {
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(
        JSON.stringify({ object: "list", data: [{ id: "fake-model", object: "model", created: 0, owned_by: "fake" }] }),
      );
    }
    if (path.endsWith("/embeddings")) {
      const inputs = Array.isArray(body.input) ? body.input : [body.input];
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(
        JSON.stringify({
          object: "list",
          model: body.model,
          data: inputs.map((_, index) => {
            const vector = Array.from({ length: 8 }, (_, i) => (index + 1) * 0.1 + i * 0.01);
            // Like OpenAI: base64 of little-endian float32 when asked (the SDK's default), numbers otherwise.
            const embedding =
              body.encoding_format === "base64"
                ? Buffer.from(new Float32Array(vector).buffer).toString("base64")
                : vector;
            return { object: "embedding", index, embedding };
          }),
          usage: { prompt_tokens: inputs.length * 5, total_tokens: inputs.length * 5 },
        }),
      );
    }
    if (path.endsWith("/v1/completions")) return legacyCompletion(body, res);
    if (path.endsWith("/v1/responses")) return responsesApi(body, res);
    if (!path.endsWith("/chat/completions"))
      return sendError(res, 404, "invalid_request_error", `Unknown path ${path}`, "unknown_url");

    const model = String(body.model);
    switch (model) {
      case "fail-400":
        return sendError(res, 400, "invalid_request_error", "Invalid value for 'temperature'.", "invalid_value");
      case "fail-401":
        return sendError(
          res,
          401,
          "invalid_request_error",
          "Incorrect API key provided: sk-***abcd.",
          "invalid_api_key",
        );
      case "fail-429":
        return sendError(res, 429, "requests", "Rate limit reached for requests", "rate_limit_exceeded", {
          "retry-after": "7",
        });
      case "fail-500":
        return sendError(res, 500, "server_error", "The server had an error while processing your request.", null);
      case "hang":
        return; // never answers
      case "echo-key-401": {
        // What OpenAI-style vendors do: name the key they refused, in full.
        const key = (req.headers.authorization ?? "").replace(/^Bearer /, "");
        return sendError(res, 401, "invalid_request_error", `Incorrect API key provided: ${key}.`, "invalid_api_key");
      }
      case "bad-json":
        res.writeHead(200, { "content-type": "application/json" });
        return res.end('{"id":"chatcmpl-broken","object":"chat.comp');
      case "slow-first-byte":
        await sleep(300);
        break;
    }

    const id = `chatcmpl-fake${Date.now()}`;
    const created = 1_700_000_000;
    const reply = `Echo: ${lastUserText(body)}`;
    const toolCall = model === "tool-call";
    const usage = model === "no-usage" ? undefined : FAKE_USAGE;

    if (body.stream !== true) {
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(
        JSON.stringify({
          id,
          object: "chat.completion",
          created,
          model,
          choices: [
            {
              index: 0,
              message: toolCall
                ? {
                    role: "assistant",
                    content: null,
                    tool_calls: [
                      {
                        id: "call_1",
                        type: "function",
                        function: { name: "get_weather", arguments: '{"city":"Paris"}' },
                      },
                    ],
                  }
                : { role: "assistant", content: reply },
              finish_reason: toolCall ? "tool_calls" : "stop",
              logprobs: null,
            },
          ],
          ...(usage ? { usage } : {}),
        }),
      );
    }

    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    res.on("close", () => {
      if (!res.writableFinished) aborted++;
    });
    const send = (payload: unknown) => res.write(`data: ${JSON.stringify(payload)}\n\n`);
    const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({
      id,
      object: "chat.completion.chunk",
      created,
      model,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
    });
    send(chunk({ role: "assistant", content: "" }));
    if (toolCall) {
      send(
        chunk({
          tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "get_weather", arguments: "" } }],
        }),
      );
      send(chunk({ tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] }));
      send(chunk({ tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] }));
      send(chunk({}, "tool_calls"));
    } else {
      const pieces = reply.match(/\S+\s*/g) ?? [];
      for (const [i, piece] of pieces.entries()) {
        if (model === "slow-stream") await sleep(40);
        if (res.destroyed) return;
        send(chunk({ content: piece }));
        if (i === 1 && model === "cut-mid-stream") {
          await sleep(50); // let what was written reach the client first: the cut comes mid-stream
          return res.destroy();
        }
        if (i === 1 && model === "echo-key-mid-stream") {
          const key = (req.headers.authorization ?? "").replace(/^Bearer /, "");
          send({
            error: { message: `Key ${key} was revoked.`, type: "invalid_request_error", param: null, code: null },
          });
          return res.end();
        }
        if (i === 1 && model === "error-mid-stream") {
          send({ error: { message: "The model crashed mid-stream.", type: "server_error", param: null, code: null } });
          return res.end();
        }
      }
      send(chunk({}, "stop"));
    }
    const options = body.stream_options as { include_usage?: boolean } | undefined;
    if (options?.include_usage && usage)
      send({ id, object: "chat.completion.chunk", created, model, choices: [], usage });
    // A provider that keeps the response open after [DONE] (never ends it).
    if (model === "linger-after-done") return void res.write("data: [DONE]\n\n");
    res.end("data: [DONE]\n\n");
  });
  server.on("connection", (socket) => {
    accepted++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    received,
    get acceptedKeys() {
      return state.acceptedKeys;
    },
    set acceptedKeys(keys) {
      state.acceptedKeys = keys;
    },
    openConnections: () => sockets.size,
    acceptedConnections: () => accepted,
    abortedStreams: () => aborted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
