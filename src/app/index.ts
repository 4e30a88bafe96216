export { Accounts, type AccountsDeps } from "./accounts";
export type { Actor } from "./audit";
export { UserData, type UserDataDeps } from "./user-data";
