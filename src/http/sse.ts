import { once } from "node:events";
import type { Response } from "express";
import { jsonTextOf } from "../providers";

/**
 * Server-sent events written as they come: headers that keep proxies from buffering, the events of one event-loop
 * turn in one socket write (a provider's packet often carries several; one write each made the syscalls the largest
 * cost of streaming), and back-pressure honoured (a slow client pauses the upstream read instead of growing memory).
 */
export class SseWriter {
  private corked = false;

  constructor(private readonly res: Response) {}

  open(): void {
    this.batch();
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

  /** A data-only event; a provider's event relayed unchanged goes as the provider wrote it (providers/wire.ts). */
  async data(payload: object): Promise<void> {
    await this.write(`data: ${jsonTextOf(payload)}\n\n`);
  }

  /** Anthropic-style events carry a name as well. */
  async event(name: string, payload: unknown): Promise<void> {
    await this.write(`event: ${name}\ndata: ${JSON.stringify(payload)}\n\n`);
  }

  end(final?: string): void {
    if (!this.closed) this.res.end(final);
  }

  /**
   * Holds this turn's writes (the headers included) and sends them together once the turn's work is done: after the
   * pending callbacks and promise reactions have run (a tick queued from a microtask runs once microtasks drain), so
   * the events parsed from one packet, which reach this writer through promise reactions, leave in one write.
   */
  private batch(): void {
    if (this.corked) return;
    this.corked = true;
    this.res.cork();
    queueMicrotask(() =>
      process.nextTick(() => {
        this.corked = false;
        this.res.uncork();
      }),
    );
  }

  private async write(text: string): Promise<void> {
    if (this.closed) return;
    this.batch();
    if (!this.res.write(text)) await Promise.race([once(this.res, "drain"), once(this.res, "close")]);
  }
}
