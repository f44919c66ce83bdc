// main: entry point of `fanrecall holder --socket PATH` (root). Runs the group-fd holder
// until SIGTERM/SIGINT, or until a new holder on the same socket takes its group over. It is
// the part of fanrecall that keeps a watched filesystem fail-closed when the listener cannot
// run, so it outlives `fanrecall start` if that is killed. Stopping it while it holds the
// group (and no listener runs) closes the group: marks vanish and stubs read as zeros.
// Owns: the process and its signals; its one setting (settings/).
import { rmSync, writeFileSync } from "node:fs";
import { DEFAULT_RUN_DIR, holderSocketPath } from "../ipc/run-dir.js";
import { helpText } from "../settings/help-text.js";
import { loadSettings } from "../settings/settings.js";
import type { CommandSpec } from "../settings/setting-types.js";
import { Holder } from "./holder.js";

export const HOLDER_SPEC = {
  usage: "fanrecall holder [--socket PATH]",
  about: `Keeps a duplicate of the listener's fanotify group fd so that a listener crash neither closes
the group nor lets the kernel allow held accesses (which would show stubs' zeros). While no
listener runs it answers the group itself: stubs fail with EIO, other files are allowed. A
restarted listener takes the group back from it; a new holder on the same socket takes the
group from one left running (the old one then exits). Root only.`,
  settings: [
    {
      name: "socket",
      key: "socket",
      env: "FANRECALL_HOLDER_SOCKET",
      type: "path",
      default: holderSocketPath(DEFAULT_RUN_DIR),
      help: "where the listener finds the holder (its --holder-socket)",
    },
  ],
} as const satisfies CommandSpec;

export const HOLDER_HELP = helpText(HOLDER_SPEC);

export async function holderMain(argv: readonly string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(HOLDER_HELP);
    return 0;
  }
  const path = loadSettings(HOLDER_SPEC, argv).socket;
  if (process.getuid?.() !== 0) throw new Error("the holder must run as root");
  const log = {
    info: (msg: string) =>
      process.stdout.write(JSON.stringify({ level: 30, time: Date.now(), component: "holder", msg }) + "\n"),
    warn: (msg: string) =>
      process.stdout.write(JSON.stringify({ level: 40, time: Date.now(), component: "holder", msg }) + "\n"),
  };
  let retired = () => {};
  const retiredP = new Promise<string>((resolve) => (retired = () => resolve("retired")));
  const holder = await Holder.open(path, log, retired);
  // Readiness for a supervisor: only once any predecessor's group is ours.
  writeFileSync(`${path}.ready`, `${process.pid}\n`, { mode: 0o600 });
  log.info(`holder ready on ${path}`);
  const why = await Promise.race([
    retiredP,
    new Promise<string>((resolve) => {
      process.once("SIGTERM", () => resolve("SIGTERM"));
      process.once("SIGINT", () => resolve("SIGINT"));
    }),
  ]);
  // A retired holder leaves the file alone: it is its successor's now.
  if (why === "retired") return 0;
  rmSync(`${path}.ready`, { force: true });
  log.info(holder.holding ? "holder stopping: the group closes now" : "holder stopping");
  holder.close();
  return 0;
}
