// main: the fanrecall command-line dispatcher. Parses the command name, prints help,
// and hands off to one module per command. Owns the process exit code only; holds no fds.
import { listenerMain } from "../listener/main.js";
import { recallServiceMain } from "../recall-service/main.js";
import { holderMain } from "../holder/main.js";
import { adminCommand, adminUsage, statusCommand } from "./admin-commands.js";
import { MESH_HELP, meshCommand } from "./mesh-command.js";
import { START_HELP, startCommand } from "./start.js";
import { COMMANDS, mainUsage } from "./usage.js";

const HELP: Record<string, () => string> = {
  start: () => START_HELP,
  archive: () => adminUsage("archive"),
  release: () => adminUsage("release"),
  restore: () => adminUsage("restore"),
  status: () => adminUsage("status"),
  mesh: () => MESH_HELP,
};

async function run(name: string, rest: readonly string[]): Promise<number> {
  switch (name) {
    case "start":
      return startCommand(rest);
    case "listener":
      return listenerMain(rest);
    case "recall-service":
      return recallServiceMain(rest);
    case "holder":
      return holderMain(rest);
    case "archive":
    case "release":
    case "restore":
      return adminCommand(name, rest);
    case "status":
      return statusCommand(rest);
    case "mesh":
      return meshCommand(rest);
    default:
      return 2;
  }
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
  if ((rest.includes("--help") || rest.includes("-h")) && HELP[name]) {
    process.stdout.write(HELP[name]());
    return 0;
  }
  try {
    return await run(name, rest);
  } catch (err: unknown) {
    process.stderr.write(`fanrecall ${name}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
