import { AsyncLocalStorage } from "node:async_hooks";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { Accounts, type Actor } from "../app";
import { type BackupTarget, createBackup, QdrantSnapshots, restoreBackup } from "../backup";
import { PolarGateway } from "../billing";
import { type Config, loadConfig } from "../config";
import { type Database, migrate, openDatabase } from "../db";
import {
  findUser,
  findUserByEmail,
  listApiKeys,
  listUsers,
  provisionUser,
  supabaseAuth,
  type User,
  UserChanges,
} from "../identity";
import { createLogger } from "../log";
import { collectionName, createEmbedder, createMemoryStore, reindexMemories } from "../memory";
import { countByMasterKey, openVault, rotateProviderKeys, vaultKeysFrom } from "../vault";

/** A usage mistake: printed with the usage text, exit code 2. */
export class UsageError extends Error {}

export interface Output {
  out: (line: string) => void;
  err: (line: string) => void;
}

type Command = (args: string[], io: Output) => Promise<number>;

/** What a command run inside the server (through its CLI socket) uses: the server's open database and its caches. */
export interface ServerContext {
  db: Database;
  userChanges: UserChanges;
}

/** Set while a command runs inside the server. */
export const serverContext = new AsyncLocalStorage<ServerContext>();

async function withDatabase<T>(
  fn: (db: Database, config: Config) => Promise<T>,
  { migrateEmbedded = true } = {},
): Promise<T> {
  const config = loadConfig(process.env);
  const shared = serverContext.getStore();
  // The server migrated it at start and keeps it open.
  if (shared) return fn(shared.db, config);
  const db = await openDatabase(config);
  try {
    // The embedded database is migrated by whoever opens it first, CLI or server, as it has no separate deploy step.
    if (migrateEmbedded && db.kind === "pglite") await migrate(db);
    return await fn(db, config);
  } finally {
    await db.close();
  }
}

/**
 * The account use cases, as the API runs them. Inside the server, changes reach its caches at once; otherwise
 * they are published on Redis when REDIS_URL is set (every server forgets the user), else servers see them within
 * AUTH_CACHE_TTL_SECONDS.
 */
async function withAccounts<T>(fn: (accounts: Accounts, db: Database, config: Config) => Promise<T>): Promise<T> {
  return withDatabase(async (db, config) => {
    // Audit lines (JSON, on stderr so stdout stays the command's answer), as the API writes them.
    const logger = createLogger({ level: "info", format: "json", stream: process.stderr });
    const shared = serverContext.getStore();
    const redis = shared || !config.redis.url ? undefined : new Redis(config.redis.url, { lazyConnect: true });
    const userChanges = shared?.userChanges ?? new UserChanges(redis, logger, { subscribe: false });
    try {
      return await fn(new Accounts({ db, tiers: config.tiers, userChanges, logger }), db, config);
    } finally {
      redis?.disconnect();
    }
  });
}

function options<T extends Record<string, { type: "string" | "boolean" }>>(args: string[], spec: T) {
  try {
    return parseArgs({ args, options: spec, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function required(value: string | boolean | undefined, flag: string): string {
  if (typeof value !== "string" || value.trim() === "") throw new UsageError(`${flag} is required`);
  return value.trim();
}

function positiveInteger(value: string | boolean | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (typeof value !== "string" || !Number.isInteger(n) || n <= 0)
    throw new UsageError(`${flag} must be a positive whole number`);
  return n;
}

function assertTier(config: Config, tier: string | undefined): void {
  if (tier !== undefined && !config.tiers.byName.has(tier)) {
    throw new UsageError(`unknown tier "${tier}"; tiers: ${[...config.tiers.byName.keys()].join(", ")}`);
  }
}

/** Backups cover an external deployment; the embedded one is a directory to copy while the server is stopped. */
async function withBackupTarget(fn: (target: BackupTarget, config: Config) => Promise<number>): Promise<number> {
  const config = loadConfig(process.env);
  const databaseUrl = config.database.url;
  if (!databaseUrl) {
    throw new UsageError(
      "backups need DATABASE_URL; in embedded mode stop the server and copy DATA_DIR (database, memories, vault.key)",
    );
  }
  const { url, apiKey } = config.qdrant;
  const db = await openDatabase(config);
  try {
    const qdrant = url ? new QdrantSnapshots({ url, apiKey }) : undefined;
    return await fn({ db, databaseUrl, qdrant, collectionPrefix: `${config.qdrant.collection}_` }, config);
  } finally {
    await db.close();
  }
}

function configuredVault(config: Config) {
  const logger = createLogger({ level: "warn", format: "pretty" });
  return openVault({ ...vaultKeysFrom(process.env), embedded: !config.database.url, dataDir: config.dataDir }, logger);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const CLI: Actor = { operator: "cli" };

async function userByIdOrEmail(db: Database, idOrEmail: string): Promise<User> {
  let user: User | undefined;
  if (idOrEmail.includes("@")) user = await findUserByEmail(db, idOrEmail);
  else if (UUID.test(idOrEmail)) user = await findUser(db, idOrEmail);
  if (!user) throw new UsageError(`no user "${idOrEmail}"`);
  return user;
}

const describeUser = (u: User) =>
  `${u.id}  ${u.email ?? "(no email)"}  tier=${u.tier}${u.isActive ? "" : "  DISABLED"}`;

export const commands: Record<string, Command> = {
  async migrate(_args, io) {
    return withDatabase(
      async (db) => {
        const applied = await migrate(db);
        io.out(
          applied.length === 0
            ? "Database is up to date."
            : `Applied ${applied.length} migration(s): ${applied.join(", ")}`,
        );
        return 0;
      },
      { migrateEmbedded: false },
    );
  },

  async "users create"(args, io) {
    const { values } = options(args, { email: { type: "string" }, tier: { type: "string" } });
    const email = required(values.email, "--email");
    return withAccounts(async (accounts, _db, config) => {
      assertTier(config, values.tier);
      const { user, key } = await accounts.createUserWithFirstKey(CLI, email, values.tier);
      io.out(`Created user ${user.id} (${user.email}, tier ${user.tier}).`);
      io.out(`API key (shown only once, store it now): ${key.key}`);
      return 0;
    });
  },

  async "users list"(args, io) {
    const { values } = options(args, { limit: { type: "string" }, offset: { type: "string" } });
    return withDatabase(async (db) => {
      const users = await listUsers(
        db,
        positiveInteger(values.limit, "--limit") ?? 1000,
        Number(values.offset ?? 0) || 0,
      );
      for (const user of users) io.out(describeUser(user));
      if (users.length === 0) io.out("No users.");
      return 0;
    });
  },

  async "users invite"(args, io) {
    const { values } = options(args, { email: { type: "string" }, tier: { type: "string" } });
    const email = required(values.email, "--email");
    const config = loadConfig(process.env);
    const { url, serviceRoleKey } = config.supabase;
    if (!url || !serviceRoleKey) throw new UsageError("users invite needs SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY");
    assertTier(config, values.tier);
    const { data, error } = await supabaseAuth(url, serviceRoleKey).admin.inviteUserByEmail(email);
    if (error || !data.user) {
      io.err(`Supabase Auth refused the invitation: ${error?.message ?? "no user returned"}`);
      return 1;
    }
    const invitedId = data.user.id;
    return withDatabase(async (db) => {
      const user = await provisionUser(db, invitedId, email, values.tier ?? config.tiers.defaultTier);
      io.out(`Invited ${email}: Supabase Auth sent the invitation; user ${user.id} (tier ${user.tier}).`);
      return 0;
    });
  },

  async "keys create"(args, io) {
    const { values } = options(args, {
      user: { type: "string" },
      name: { type: "string" },
      tier: { type: "string" },
      "rate-limit-per-minute": { type: "string" },
      "rate-limit-per-day": { type: "string" },
    });
    const who = required(values.user, "--user");
    return withAccounts(async (accounts, db, config) => {
      assertTier(config, values.tier);
      const user = await userByIdOrEmail(db, who);
      const key = await accounts.createApiKey(CLI, user.id, {
        name: values.name,
        tier: values.tier ?? null,
        rateLimitPerMinute: positiveInteger(values["rate-limit-per-minute"], "--rate-limit-per-minute") ?? null,
        rateLimitPerDay: positiveInteger(values["rate-limit-per-day"], "--rate-limit-per-day") ?? null,
      });
      io.out(`Created API key ${key.id} (${key.name}) for ${user.email ?? user.id}.`);
      io.out(`API key (shown only once, store it now): ${key.key}`);
      return 0;
    });
  },

  async "keys list"(args, io) {
    const { values } = options(args, { user: { type: "string" } });
    const who = required(values.user, "--user");
    return withDatabase(async (db) => {
      const user = await userByIdOrEmail(db, who);
      const keys = await listApiKeys(db, user.id);
      for (const k of keys) {
        io.out(
          `${k.id}  ${k.display}  ${k.name}  ${k.isActive ? "active" : "revoked"}  last used ${k.lastUsed?.toISOString() ?? "never"}`,
        );
      }
      if (keys.length === 0) io.out("No API keys.");
      return 0;
    });
  },

  async "keys revoke"(args, io) {
    const { positionals } = options(args, {});
    const keyId = required(positionals[0], "the key id");
    if (!UUID.test(keyId)) throw new UsageError(`no API key with id ${keyId}`);
    return withAccounts(async (accounts) => {
      await accounts.revokeApiKey(CLI, keyId);
      io.out(`Revoked API key ${keyId}.`);
      return 0;
    });
  },

  async "vault rotate"(_args, io) {
    return withDatabase(async (db, config) => {
      const vault = configuredVault(config);
      const report = await rotateProviderKeys(db, vault);
      io.out(`Re-encrypted ${report.rotated} provider key(s) under master key ${vault.currentKeyId}.`);
      if (report.failed.length > 0) {
        io.err(
          `${report.failed.length} provider key(s) could not be decrypted with the configured keys: ${report.failed.join(", ")}`,
        );
        return 1;
      }
      return 0;
    });
  },

  async "vault status"(_args, io) {
    return withDatabase(async (db, config) => {
      const vault = configuredVault(config);
      const counts = await countByMasterKey(db);
      const advice = {
        current: "current",
        previous: 'previous key: run "vault rotate" before removing it',
        unknown: "no configured key opens these: set the key they were sealed with",
      };
      for (const { keyId, count } of counts)
        io.out(`${keyId}  ${count} provider key(s)  ${advice[vault.keyStateOf(keyId)]}`);
      if (counts.every(({ keyId }) => vault.keyStateOf(keyId) === "current")) {
        io.out(`Every stored provider key is sealed under the current master key ${vault.currentKeyId}.`);
        return 0;
      }
      return 1;
    });
  },

  async "backup create"(args, io) {
    const { values } = options(args, { out: { type: "string" } });
    const stamp = new Date()
      .toISOString()
      .replace(/[-:]/g, "")
      .replace(/\.\d+Z$/, "Z");
    const dir = typeof values.out === "string" ? values.out : join("backups", `perpetual-${stamp}`);
    return withBackupTarget(async (target, config) => {
      await createBackup(target, dir, config.version, io.out);
      io.out(`Backup complete: ${dir} (keep API_KEY_ENCRYPTION_KEY elsewhere: the provider keys in it need it)`);
      return 0;
    });
  },

  async "backup restore"(args, io) {
    const { values, positionals } = options(args, { replace: { type: "boolean" } });
    const dir = required(positionals[0], "the backup directory");
    return withBackupTarget(async (target, config) => {
      const settings = {
        replace: values.replace === true,
        vault: configuredVault(config),
        migrate: () => migrate(target.db),
      };
      await restoreBackup(target, dir, settings, io.out);
      io.out(`Restore complete from ${dir}.`);
      return 0;
    });
  },

  async "memory reindex"(args, io) {
    const { values } = options(args, { from: { type: "string" } });
    return withDatabase(async (db, config) => {
      if (serverContext.getStore() && !config.qdrant.url) {
        throw new UsageError("the embedded memory store belongs to the running server: stop it, then reindex");
      }
      const embedder = createEmbedder(config);
      const targetName = collectionName(config, embedder);
      const target = createMemoryStore(config, targetName, embedder.dimensions);
      await target.ready();
      try {
        const candidates = await target.siblings(`${config.qdrant.collection}_`);
        const from =
          typeof values.from === "string" ? values.from : candidates.length === 1 ? candidates[0] : undefined;
        if (!from) {
          throw new UsageError(
            candidates.length === 0
              ? `nothing to reindex: ${targetName} is the only memory collection`
              : `several earlier collections exist; pick one with --from: ${candidates.join(", ")}`,
          );
        }
        if (from === targetName) throw new UsageError(`--from ${from} is the current collection`);
        if (!candidates.includes(from)) throw new UsageError(`no memory collection ${from}`);
        const source = createMemoryStore(config, from, embedder.dimensions);
        await source.ready();
        try {
          io.out(`Re-embedding memories from ${from} into ${targetName} with ${embedder.id}...`);
          const report = await reindexMemories({ db, source, target, embedder });
          io.out(`Reindexed ${report.memories} memories of ${report.users} user(s) into ${targetName}.`);
          io.out(`${from} is left as it was; remove it once the new collection serves well.`);
        } finally {
          await source.close();
        }
      } finally {
        await target.close();
      }
      return 0;
    });
  },

  async "billing meters setup"(_args, io) {
    const config = loadConfig(process.env);
    const { apiKey } = config.polar;
    if (!apiKey) throw new UsageError("POLAR_API_KEY is not set: billing is off");
    const polar = new PolarGateway({ ...config.polar, apiKey });
    for (const meter of await polar.setUpMeters(config.polar.eventName)) {
      io.out(`${meter.created ? "Created" : "Exists "}  ${meter.name}  (${meter.id})`);
    }
    io.out(`Both meters count events named "${config.polar.eventName}". Attach them to a metered price in Polar.`);
    return 0;
  },

  async "billing credit"(args, io) {
    const { values } = options(args, { user: { type: "string" }, usd: { type: "string" } });
    const usd = Number(required(values.usd, "--usd"));
    if (!Number.isFinite(usd) || usd === 0 || Math.abs(usd) > 1e7) {
      throw new UsageError("--usd must be a non-zero amount in dollars, e.g. 25 or -5");
    }
    return withAccounts(async (accounts, db) => {
      const user = await userByIdOrEmail(db, required(values.user, "--user"));
      const balance = await accounts.creditBalance(CLI, user.id, usd);
      io.out(`Balance of ${user.email ?? user.id}: $${balance.toFixed(2)}.`);
      return 0;
    });
  },
};
