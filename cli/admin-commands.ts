// admin-commands: `fanrecall archive|release|restore|pin|unpin|status`. They run as root from any
// terminal while the listener runs; archive, release, restore, pin and unpin go through the listener's
// admin socket (the recall service only ever sees fds the listener hands it; the pin is a
// trusted xattr the listener writes through its own fd: an O_PATH fd takes no fsetxattr, and
// the listener is already the one writer of trusted xattrs), and status
// reads the trusted stub state itself. Every path is resolved beneath a directory the
// listener watches with no symlink followed, recursion included (safe-walk), and every file
// is then handled by its O_PATH fd, never by path: stat and xattr on that fd (no open for
// reading, so no recall), the same fd sent to the listener.
//
// Owns: their settings tables (settings/ parses them), output and the exit code of these commands; the admin connection
// and the watched directories' fds while a command runs (closed before it returns).
import * as native from "../native/index.js";
import type { FdStat } from "../native/index.js";
import { Reason, RecallService, createClient } from "../proto/index.js";
import { DEFAULT_RUN_DIR, adminSocketPath, recallGrpcSocketPath } from "../ipc/run-dir.js";
import { helpText } from "../settings/help-text.js";
import { loadSettings } from "../settings/settings.js";
import type { CommandSpec, FlagSetting, PathSetting } from "../settings/setting-types.js";
import { needsRecall } from "../listener/stub-state.js";
import { StubStore, fileStatus } from "../listener/stub-store.js";
import type { FileStatus } from "../listener/stub-store.js";
import { AdminClient, transferTimeoutMs } from "./admin-client.js";
import { findRunDir, requireRunDir } from "./instance-registry.js";
import { ADMIN_RUN_DIR as NAMESPACE_ADMIN_RUN_DIR } from "./namespace-settings.js";
import { walkFiles } from "./safe-walk.js";
import type { WalkProblem } from "./safe-walk.js";
import { WatchRoots } from "./watch-roots.js";

const ROOTS_TIMEOUT_MS = 10_000;

type Op = "archive" | "release" | "restore" | "pin" | "unpin";

/** One line of `fanrecall status`: the file's status (stub-store), or "lost" when its archived copy is gone; and its pin. */
export type StatusLine = Omit<FileStatus, "state"> & {
  readonly path: string;
  readonly state: FileStatus["state"] | "lost";
  readonly pinned: boolean;
};

const ABOUT = `PATH may be a file or a directory (walked recursively) beneath a watched directory; a symlink
anywhere on the way is refused, and symlinks met while walking are not followed.`;

const PATHS = { name: "PATH", min: 1 } as const;

/** --run-dir without a default: the instance watching the paths is found (instance-registry.ts). */
const ADMIN_RUN_DIR = {
  ...NAMESPACE_ADMIN_RUN_DIR,
  help: `the run dir of the fanrecall instance to ask (default: FANRECALL_RUN_DIR, else the running 'fanrecall start' that watches PATH, whatever --state-dir or --run-dir it was given, else ${DEFAULT_RUN_DIR})`,
} as const satisfies PathSetting;

const JSON_SETTING = {
  name: "json",
  key: "json",
  type: "flag",
  help: "one JSON object per file: path, state, size, populatedBytes, object, pinned",
} as const satisfies FlagSetting;

/** archive, release, restore, pin and unpin (adminUsage names the one). */
export const ADMIN_SPEC = {
  usage: "fanrecall archive|release|restore|pin|unpin [--run-dir DIR] PATH...",
  about: ABOUT,
  settings: [ADMIN_RUN_DIR],
  positionals: PATHS,
} as const satisfies CommandSpec;

export const STATUS_SPEC = {
  usage: "fanrecall status [--json] [--run-dir DIR] PATH...",
  about: ABOUT,
  settings: [ADMIN_RUN_DIR, JSON_SETTING],
  positionals: PATHS,
} as const satisfies CommandSpec;

export function adminUsage(op: Op | "status"): string {
  if (op === "status") return helpText(STATUS_SPEC);
  return helpText({ ...ADMIN_SPEC, usage: `fanrecall ${op} [--run-dir DIR] PATH...` });
}

/** Stub state read on the O_PATH fds safe-walk gives (no log: a corrupt state is reported as such). */
const stubs = new StubStore(null);

export async function adminCommand(op: Op, argv: readonly string[]): Promise<number> {
  const args = loadSettings(ADMIN_SPEC, argv);
  if (process.getuid?.() !== 0) throw new Error(`'fanrecall ${op}' must run as root`);
  const problems: WalkProblem[] = [];
  const client = new AdminClient(adminSocketPath(args.runDir ?? requireRunDir(args.positionals)));
  let failed = 0;
  try {
    const roots = WatchRoots.open(await client.roots(ROOTS_TIMEOUT_MS));
    try {
      for (const file of walkFiles(roots, args.positionals, problems)) {
        if (!(await adminOne(client, op, file))) failed++;
      }
    } finally {
      roots.close();
    }
  } finally {
    client.close();
  }
  for (const p of problems) process.stderr.write(`fanrecall ${op}: ${p.path}: ${p.error} (${p.reason})\n`);
  return failed + problems.length > 0 ? 1 : 0;
}

/** One file of archive, release or restore; false when it failed (reported on stderr). */
async function adminOne(client: AdminClient, op: Op, file: { path: string; fd: number; st: FdStat }): Promise<boolean> {
  const { path } = file;
  const stub = stubs.readOPath(file.fd);
  // Archive and release have nothing to do for a stub, and restore nothing for a resident file.
  if (stub !== null && stub !== "corrupt" && needsRecall(stub.state) && (op === "archive" || op === "release")) {
    process.stdout.write(`${op}: ${path}: already ${stub.state}\n`);
    return true;
  }
  if (stub === null && op === "restore") {
    process.stdout.write(`${op}: ${path}: resident\n`);
    return true;
  }
  let reply;
  try {
    reply = await client.requestFd(op, file.fd, transferTimeoutMs(file.st.size), path);
  } catch (err: unknown) {
    reply = { ok: false, reason: "protocol-error", error: err instanceof Error ? err.message : String(err) };
  }
  if (reply.ok) process.stdout.write(`${op}: ${path}: ${reply.state ?? "ok"}\n`);
  else process.stderr.write(`fanrecall ${op}: ${path}: ${reply.error ?? "failed"} (${reply.reason ?? "error"})\n`);
  return reply.ok;
}

/**
 * Bytes present in a partly recalled file, by SEEK_DATA/SEEK_HOLE on a reopen of its O_PATH
 * fd (the same inode, whatever its path now). `partial` exists only in range mode, where an
 * open raises no event, so opening the file here recalls nothing.
 */
function partialBytes(fd: number, size: number): number {
  const rd = native.openPath(`/proc/self/fd/${fd}`, native.FAN.O_RDONLY | native.FAN.O_NOATIME);
  try {
    return native.dataBytes(rd, size);
  } finally {
    native.close(rd);
  }
}

function statusOf(file: { path: string; fd: number; st: FdStat }): StatusLine {
  const { path, fd, st } = file;
  const status = fileStatus(st, stubs.readOPath(fd), () => partialBytes(fd, st.size));
  return { path, ...status, pinned: stubs.pinnedOPath(fd) };
}

/**
 * The listener's watched directories; without a listener, status still answers, resolving
 * from "/" with no symlink followed (not confined beneath a watched directory), and says so.
 */
async function statusRoots(runDir: string): Promise<WatchRoots> {
  let client: AdminClient | null = null;
  try {
    client = new AdminClient(adminSocketPath(runDir));
    return WatchRoots.open(await client.roots(ROOTS_TIMEOUT_MS));
  } catch (err: unknown) {
    process.stderr.write(
      `fanrecall status: ${err instanceof Error ? err.message : String(err)}; paths are resolved without symlinks but not checked to be beneath a watched directory\n`,
    );
    return WatchRoots.unconfined();
  } finally {
    client?.close();
  }
}

export async function statusCommand(argv: readonly string[]): Promise<number> {
  const args = loadSettings(STATUS_SPEC, argv);
  if (process.getuid?.() !== 0)
    throw new Error("'fanrecall status' must run as root (stub state is in trusted.* xattrs)");
  const problems: WalkProblem[] = [];
  // Without a listener, status still answers (unconfined): the default run dir then.
  const runDir = args.runDir ?? findRunDir(args.positionals) ?? DEFAULT_RUN_DIR;
  const recall = createClient(RecallService, `unix://${recallGrpcSocketPath(runDir)}`);
  let storeReachable = true;
  const roots = await statusRoots(runDir);
  try {
    for (const file of walkFiles(roots, args.positionals, problems)) {
      let s: StatusLine;
      try {
        s = statusOf(file);
      } catch (err: unknown) {
        problems.push({
          path: file.path,
          reason: "stub-corrupt",
          error: err instanceof Error ? err.message : String(err),
        });
        continue;
      }
      if (s.object && storeReachable && s.state !== "dirty") {
        try {
          const r = await recall.client.statObject({ object: s.object }, { timeoutMs: 5_000 });
          if (!r.exists && r.reason === Reason.OBJECT_MISSING) s = { ...s, state: "lost" };
        } catch {
          storeReachable = false;
          process.stderr.write(
            "fanrecall status: the recall service is not reachable; archived copies were not checked\n",
          );
        }
      }
      if (args.json) process.stdout.write(JSON.stringify(s) + "\n");
      else
        process.stdout.write(
          `${s.state.padEnd(9)} ${String(s.size).padStart(14)} ${String(s.populatedBytes).padStart(14)} ${s.pinned ? "pinned" : "      "}  ${s.path}\n`,
        );
    }
  } finally {
    roots.close();
    recall.close();
  }
  for (const p of problems) process.stderr.write(`fanrecall status: ${p.path}: ${p.error} (${p.reason})\n`);
  return problems.length > 0 ? 1 : 0;
}

/** What `fanrecall status` runs and its --help (cli/main.ts loads this module only then). */
export const STATUS_COMMAND = { run: statusCommand, help: () => adminUsage("status") };
