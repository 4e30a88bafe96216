export { costOf, type TokenUsage } from "./cost";
export { type UsageRecord, UsageRecorder } from "./recorder";
