import { serveCalls } from "../threads";
import type { ParseRequest } from "./parse";

/** The JSON thread: decodes and parses what it is sent, in arrival order, and posts the value back. */
serveCalls(({ bytes, text, encoding }: ParseRequest & { id: number }) =>
  JSON.parse(text ?? new TextDecoder(encoding, { fatal: false }).decode(bytes)),
);
