import { ConfigError, loadConfig } from "../config";
import { ApiError } from "../errors";
import { redactText } from "../log";
import { commands, type Output, type ServerContext, serverContext, UsageError } from "./commands";
import { runInServer } from "./server-socket";

const USAGE = `Usage: npm run cli -- <command> [options]

Commands:
  migrate                      Apply pending SQL migrations (DATABASE_URL, or the embedded database in DATA_DIR).
  users create --email E [--tier T]
                               Create a user and print their first API key (shown once).
  users list [--limit N] [--offset N]
  users invite --email E [--tier T]
                               Invite through Supabase Auth (needs SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY).
  keys create --user ID|EMAIL [--name N] [--tier T] [--rate-limit-per-minute N] [--rate-limit-per-day N]
                               Issue another API key for a user (printed once).
  keys list --user ID|EMAIL    List a user's keys, masked.
  keys revoke KEY_ID           Revoke a key.
  vault rotate                 Re-encrypt every stored provider key under API_KEY_ENCRYPTION_KEY (resumable,
                               safe while the server runs; keep old keys in API_KEY_ENCRYPTION_KEYS_PREVIOUS).
  vault status                 Count stored provider keys by master key; exits 0 only when all are under the current
                               key (then API_KEY_ENCRYPTION_KEYS_PREVIOUS can be emptied).
  backup create [--out DIR]    Dump Perpetual's PostgreSQL tables (pg_dump) and snapshot its Qdrant collections into
                               DIR (default backups/perpetual-<UTC time>), with a manifest of checksums.
  backup restore DIR [--replace]
                               Check, then restore a backup into DATABASE_URL (migrated first) and QDRANT_URL;
                               refuses a non-empty target unless --replace. Stop the API servers first.
  memory reindex [--from COLLECTION]
                               Re-embed every memory with the configured embedder (after EMBEDDING_* changed) from
                               the earlier model's collection into the current one; idempotent, resumable.
  billing meters setup         Create the recommended Polar meters (sum of tokens, sum of cost) for POLAR_EVENT_NAME;
                               existing ones (same name) are kept.
  billing credit --user ID|EMAIL --usd N
                               Add N dollars to a user's prepaid balance (remove: --usd=-N).
  help                         Show this help.

In embedded mode (no DATABASE_URL) the database belongs to one process: while the server runs, commands run
inside it (through DATA_DIR/cli.sock), with the same output.
Exit codes: 0 success, 1 failure, 2 usage error.`;

/** DATA_DIR when the database is the embedded one (a running server may hold it), else undefined. */
function embeddedDataDir(): string | undefined {
  try {
    const config = loadConfig(process.env);
    return config.database.url ? undefined : config.dataDir;
  } catch {
    return undefined; // the command reports the configuration problem itself
  }
}

/**
 * Runs one CLI command. `server`: the server's database and caches (a command sent through its CLI socket). Otherwise, in
 * embedded mode, a server listening on DATA_DIR's socket runs the command, else the CLI opens the database.
 */
export async function runCli(
  argv: string[],
  io: Output = { out: console.log, err: console.error },
  server?: ServerContext,
): Promise<number> {
  const words = argv.filter((a) => !a.startsWith("-"));
  if (argv.length === 0 || argv.includes("--help") || argv.includes("-h") || words[0] === "help") {
    io.out(USAGE);
    return argv.length === 0 ? 2 : 0;
  }
  // The longest run of leading words that names a command ("billing meters setup", "keys create", "migrate").
  const name = [3, 2, 1].map((n) => words.slice(0, n).join(" ")).find((candidate) => commands[candidate]);
  const command = name ? commands[name] : undefined;
  if (!name || !command) {
    io.err(`Unknown command "${words.slice(0, 2).join(" ")}".\n\n${USAGE}`);
    return 2;
  }
  if (!server) {
    const dataDir = embeddedDataDir();
    const code = dataDir === undefined ? undefined : await runInServer(dataDir, argv, io);
    if (code !== undefined) return code;
  }
  const rest = [...argv];
  for (const word of name.split(" ")) rest.splice(rest.indexOf(word), 1);
  try {
    if (server) return await serverContext.run(server, () => command(rest, io));
    return await command(rest, io);
  } catch (error) {
    // A use case refusing the caller's input (unknown user, email taken) is a usage mistake too.
    if (error instanceof UsageError || (error instanceof ApiError && error.status < 500)) {
      io.err(`Error: ${error.message}\n\nRun "npm run cli -- --help" for usage.`);
      return 2;
    }
    if (error instanceof ConfigError) io.err(error.message);
    else io.err(`Error: ${redactText(error instanceof Error ? error.message : String(error))}`);
    return 1;
  }
}

if (require.main === module) {
  runCli(process.argv.slice(2)).then((code) => process.exit(code));
}
