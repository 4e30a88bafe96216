import { workerData } from "node:worker_threads";
import { serveCalls } from "../../threads";
import { adoptWordVectors } from "../embedders/word-vectors";
import { EmbeddedEngine } from "./engine";
import type { EngineRequest, EngineSettings } from "./protocol";

/** The embedded store's thread: opens (replays) the log once, then answers calls in the order they arrive. */
const settings = workerData as EngineSettings;
adoptWordVectors(settings.wordVectors);
const engine = new EmbeddedEngine(settings.dataDir, settings.collection, settings.dimensions);
const opened = engine.open();
// An open that fails is reported on every call (the store answers "unavailable"), not as an unhandled rejection.
opened.catch(() => {});

serveCalls(async (request: EngineRequest) => {
  await opened;
  return run(request);
});

function run(request: EngineRequest): unknown | Promise<unknown> {
  switch (request.op) {
    case "open":
      return undefined;
    case "siblings":
      return engine.siblings(request.prefix);
    case "upsert":
      return engine.upsert(request.userId, request.memories);
    case "search":
      return engine.search(request.userId, request.query);
    case "neighbours":
      return engine.neighbours(request.userId, request.of);
    case "list":
      return engine.list(request.userId, request.options);
    case "delete":
      return engine.delete(request.userId, request.which);
    case "close":
      return engine.close();
  }
}
