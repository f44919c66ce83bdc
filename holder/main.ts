// main: entry point of `fanrecall holder --socket PATH` (root). Runs the group-fd holder
// until SIGTERM/SIGINT. It must never be restarted casually: stopping it while it holds the
// group (and no listener runs) closes the group, and readers of stubs would see zeros.
// Owns: the process and its signals.
import { Holder } from "./holder.js";

export const HOLDER_HELP = `Usage: fanrecall holder [--socket PATH]

Keeps a duplicate of the listener's fanotify group fd so that a listener crash neither closes
the group nor lets the kernel allow held accesses (which would show stubs' zeros). A
restarted listener takes the group back from it. Root only.
  --socket PATH   default FANRECALL_HOLDER_SOCKET or /run/fanrecall/holder/holder.sock
`;

export async function holderMain(argv: readonly string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(HOLDER_HELP);
    return 0;
  }
  let path = process.env.FANRECALL_HOLDER_SOCKET ?? "/run/fanrecall/holder/holder.sock";
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--socket" && argv[i + 1]) path = argv[++i]!;
    else throw new Error(`unknown option '${argv[i]}'`);
  }
  if (process.getuid?.() !== 0) throw new Error("the holder must run as root");
  const log = {
    info: (msg: string) =>
      process.stdout.write(JSON.stringify({ level: 30, time: Date.now(), component: "holder", msg }) + "\n"),
    warn: (msg: string) =>
      process.stdout.write(JSON.stringify({ level: 40, time: Date.now(), component: "holder", msg }) + "\n"),
  };
  const holder = new Holder(path, log);
  log.info(`holder ready on ${path}`);
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  log.info(holder.holding ? "holder stopping: the group closes now" : "holder stopping");
  holder.close();
  return 0;
}
