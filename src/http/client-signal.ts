import type { Response } from "express";

/** Aborts when the client goes away before the response is complete: the provider call is cancelled with it. */
export function clientGoneSignal(res: Response): AbortSignal {
  const controller = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}
