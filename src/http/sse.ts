import { once } from "node:events";
import type { Response } from "express";

/**
 * Server-sent events written as they come: headers that keep proxies from buffering, one write per event, and
 * back-pressure honoured (a slow client pauses the upstream read instead of growing memory).
 */
export class SseWriter {
  constructor(private readonly res: Response) {}

  open(): void {
    this.res.status(200);
    this.res.set({
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    this.res.flushHeaders();
    this.res.socket?.setNoDelay(true);
  }

  get closed(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  async data(payload: unknown): Promise<void> {
    await this.write(`data: ${JSON.stringify(payload)}\n\n`);
  }

  /** Anthropic-style events carry a name as well. */
  async event(name: string, payload: unknown): Promise<void> {
    await this.write(`event: ${name}\ndata: ${JSON.stringify(payload)}\n\n`);
  }

  end(final?: string): void {
    if (!this.closed) this.res.end(final);
  }

  private async write(text: string): Promise<void> {
    if (this.closed) return;
    if (!this.res.write(text)) await Promise.race([once(this.res, "drain"), once(this.res, "close")]);
  }
}
