import express from "express";
import { Pool } from "undici";

/**
 * The bench's baseline: the least a proxy in our stack can do — Express 5 plus a pooled undici client relaying
 * POST /v1/chat/completions to the upstream, body in, bytes (JSON or SSE) out. No auth, limits, memory or usage.
 */
const upstream = new URL(process.argv[2] ?? "");
const pool = new Pool(upstream.origin, { connections: 128 });
const app = express();
app.use(express.raw({ type: () => true, limit: "10mb" }));
app.post("/v1/chat/completions", async (req, res) => {
  try {
    const answer = await pool.request({
      method: "POST",
      path: `${upstream.pathname.replace(/\/$/, "")}/chat/completions`,
      headers: { "content-type": "application/json" },
      body: req.body as Buffer,
    });
    res.status(answer.statusCode);
    const type = answer.headers["content-type"];
    if (typeof type === "string") res.setHeader("content-type", type);
    for await (const chunk of answer.body) res.write(chunk);
    res.end();
  } catch {
    if (!res.headersSent) res.status(502);
    res.end();
  }
});
const server = app.listen(0, "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/v1\n`);
});
