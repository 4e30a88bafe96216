export { Accounts, type AccountsDeps } from "./accounts";
export type { Actor } from "./audit";
export { UserData, type UserDataDeps, type UserExport } from "./user-data";
