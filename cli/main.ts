// main: the fanrecall command-line dispatcher. Parses the command name, prints help,
// and hands off to one module per command. Owns the process exit code only; holds no fds.
import { COMMANDS, commandUsage, mainUsage } from "./usage.js";

/** Runs the CLI and returns the exit code (0 ok, 1 failure, 2 usage error). */
export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(mainUsage());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`fanrecall: unknown command '${name}'\n\n${mainUsage()}`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(commandUsage(name) ?? "");
    return 0;
  }
  process.stderr.write(`fanrecall ${name}: not built yet\n`);
  return 1;
}
