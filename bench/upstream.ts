import { startFakeOpenAiUpstream } from "../tests/fakes/openai-upstream";

/** The benchmark's upstream, in its own process so it does not share an event loop with the load generator. */
startFakeOpenAiUpstream({ record: false }).then((upstream) => {
  process.stdout.write(`${upstream.url}\n`);
});
