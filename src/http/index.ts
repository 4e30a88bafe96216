export { type AppDeps, createApp } from "./app";
export type { HealthProbes } from "./health";
export { requestIdOf, setRequestUser } from "./request-context";
