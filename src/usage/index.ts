export { costOf, type TokenUsage } from "./cost";
export { QUARANTINE_FILE } from "./journal";
export { type UsageRecord, UsageRecorder, usageRecordSchema } from "./recorder";
