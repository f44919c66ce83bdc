// main: the fanrecall command-line dispatcher. Parses the command name, prints help,
// and hands off to one module per command, loaded only when that command runs: the root
// processes (listener, holder, admin commands) must never load the recall service, the
// minio client, the mesh TLS server or s3rver. Owns the process exit code only; holds no fds.
import { COMMANDS, mainUsage } from "./usage.js";

interface Command {
  readonly run: (rest: readonly string[]) => Promise<number>;
  /** Help printed here; commands without it print their own on --help. */
  readonly help?: () => string;
}

const LOADERS: Record<string, () => Promise<Command>> = {
  start: async () => (await import("./start.js")).START_COMMAND,
  listener: async () => ({ run: (await import("../listener/main.js")).listenerMain }),
  "recall-service": async () => ({ run: (await import("../recall-service/main.js")).recallServiceMain }),
  holder: async () => ({ run: (await import("../holder/main.js")).holderMain }),
  archive: async () => admin("archive"),
  release: async () => admin("release"),
  restore: async () => admin("restore"),
  status: async () => (await import("./admin-commands.js")).STATUS_COMMAND,
  reconcile: async () => (await import("./reconcile-command.js")).RECONCILE_COMMAND,
  rebuild: async () => (await import("./rebuild-command.js")).REBUILD_COMMAND,
  undelete: async () => (await import("./undelete-command.js")).UNDELETE_COMMAND,
  mesh: async () => (await import("./mesh-command.js")).MESH_COMMAND,
};

async function admin(op: "archive" | "release" | "restore"): Promise<Command> {
  const m = await import("./admin-commands.js");
  return { run: (rest) => m.adminCommand(op, rest), help: () => m.adminUsage(op) };
}

/** Runs the CLI and returns the exit code (0 ok, 1 failure, 2 usage error). */
export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(mainUsage());
    return name === undefined ? 2 : 0;
  }
  if (!COMMANDS.some((c) => c.name === name)) {
    process.stderr.write(`fanrecall: unknown command '${name}'\n\n${mainUsage()}`);
    return 2;
  }
  const load = LOADERS[name];
  if (!load) return 2;
  try {
    const command = await load();
    if ((rest.includes("--help") || rest.includes("-h")) && command.help) {
      process.stdout.write(command.help());
      return 0;
    }
    return await command.run(rest);
  } catch (err: unknown) {
    process.stderr.write(`fanrecall ${name}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
