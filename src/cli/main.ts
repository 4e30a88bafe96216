import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../config";
import { migrate, openDatabase } from "../db";
import { redactText } from "../log";

const USAGE = `Usage: npm run cli -- <command> [options]

Commands:
  migrate        Apply pending SQL migrations from supabase/migrations to the configured database
                 (DATABASE_URL, or the embedded database under DATA_DIR when it is unset).
  help           Show this help.

Options:
  -h, --help     Show this help.

Exit codes: 0 success, 1 failure, 2 usage error.`;

type Command = (args: string[]) => Promise<number>;

const commands: Record<string, Command> = {
  async migrate() {
    const config = loadConfig(process.env);
    const db = await openDatabase(config);
    try {
      const applied = await migrate(db);
      console.log(
        applied.length === 0
          ? "Database is up to date."
          : `Applied ${applied.length} migration(s): ${applied.join(", ")}`,
      );
      return 0;
    } finally {
      await db.close();
    }
  },
  async help() {
    console.log(USAGE);
    return 0;
  },
};

export async function runCli(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    options: { help: { type: "boolean", short: "h" } },
    allowPositionals: true,
    strict: false,
  });
  const [name, ...rest] = positionals;
  if (values.help || !name) {
    console.log(USAGE);
    return name || values.help ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    console.error(`Unknown command "${name}".\n\n${USAGE}`);
    return 2;
  }
  try {
    return await command(rest);
  } catch (error) {
    if (error instanceof ConfigError) console.error(error.message);
    else console.error(`Error: ${redactText(error instanceof Error ? error.message : String(error))}`);
    return 1;
  }
}

if (require.main === module) {
  runCli(process.argv.slice(2)).then((code) => process.exit(code));
}
