import type { CallOptions, CallTarget } from "../types";
import { postJson, postStream } from "./http";

/** A Response object or a Responses stream event, as OpenAI sends them. */
export type ResponsesPayload = Record<string, unknown> & { type?: string };

/**
 * OpenAI's own Responses API (`POST /responses`), over the same pooled client, key handling and error semantics as
 * chat completions: the JSON Response, or its typed events (each `data:` a JSON object with a `type`).
 */
export function createResponse(target: CallTarget, body: Record<string, unknown>, options: CallOptions) {
  return postJson<ResponsesPayload>(target, "/responses", { ...body, model: target.model, stream: false }, options);
}

export function streamResponse(target: CallTarget, body: Record<string, unknown>, options: CallOptions) {
  return postStream<ResponsesPayload>(target, "/responses", { ...body, model: target.model, stream: true }, options);
}
