// config: the listener's settings, from flags, the environment (FANRECALL_*) and/or a JSON
// file (--config). It holds no S3 settings at all: the listener never talks to the store.
//
// Owns: parsing, validation, and the safety check that refuses to watch a filesystem the
// listener itself reads from (its code, node, its run dir, its stdout), which would deadlock.
import { readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export interface ListenerConfig {
  readonly watch: readonly string[];
  readonly runDir: string;
  readonly recallUid: number;
  readonly mode: "auto" | "range" | "whole";
  readonly recallTimeoutMs: number;
  /** Distinct files recalled at once. */
  readonly maxRecalls: number;
  /** The part of maxRecalls one uid or cgroup may hold. */
  readonly callerShare: number;
  readonly logLevel: string;
  /** Where the root-only admin socket goes (default RUN_DIR/listener/admin.sock). */
  readonly adminSocket: string;
  /** The group-fd holder's socket; "" runs without one. */
  readonly holderSocket: string;
  /** Serve mesh admin requests relayed by the recall service (status, restore, archive). */
  readonly meshAdmin: boolean;
  /** Hash recalled bytes before allowing an access (false only to measure what that costs). */
  readonly checkRecalledBytes: boolean;
}

export const LISTENER_HELP = `Usage: fanrecall listener --watch DIR [--watch DIR ...] [options]

Runs the root fanotify listener: marks the filesystems of the watched directories, holds
accesses to stubs while the recall service brings their data back, and answers the kernel.
It holds no S3 credentials and opens no network port.

Settings (flag, environment variable, or key in the --config JSON file):
  --watch DIR               FANRECALL_WATCH (DIR:DIR...)   watch        (required)
  --run-dir DIR             FANRECALL_RUN_DIR              runDir       (default /run/fanrecall)
  --recall-uid UID          FANRECALL_RECALL_UID           recallUid    (default: the uid of the system
                            user 'fanrecall'; never 0, never 65534, which users' programs run as)
  --mode auto|range|whole   FANRECALL_MODE                 mode         (default auto)
  --recall-timeout-ms MS    FANRECALL_RECALL_TIMEOUT_MS    recallTimeoutMs (default 30000)
  --max-recalls N           FANRECALL_MAX_RECALLS          maxRecalls   (default 256: distinct files
                            recalled at once; readers of a file being recalled wait for it uncounted)
  --caller-share FRACTION   FANRECALL_CALLER_SHARE         callerShare  (default 0.5: the part of
                            max-recalls one uid or one cgroup may hold; beyond it, EAGAIN)
  --log-level LEVEL         FANRECALL_LOG_LEVEL            logLevel     (default info)
  --admin-socket PATH       FANRECALL_ADMIN_SOCKET         adminSocket  (default RUN_DIR/listener/admin.sock)
  --holder-socket PATH      FANRECALL_HOLDER_SOCKET        holderSocket (default RUN_DIR/holder/holder.sock;
                            "" = none: a crash of this process would then let held readers through)
  --mesh-admin true|false   FANRECALL_MESH_ADMIN           meshAdmin    (default false: serve status,
                            restore and archive requests that the recall service relays from its
                            TLS mesh admin API; paths are resolved here, beneath a --watch DIR)
  --check-recalled-bytes true|false  FANRECALL_CHECK_RECALLED_BYTES  checkRecalledBytes (default
                            true: every recalled byte is hashed here and compared with the stub's
                            trusted hashes before the access goes on; false exists only to measure
                            that cost, and lets a compromised recall service show readers any bytes)

Signals: SIGTERM/SIGINT stop fanrecall here (held accesses are answered, marks removed, the
group closed); SIGUSR2 exits for an upgrade, leaving the group and its queued accesses with
the holder for the next listener.
  --config FILE             FANRECALL_CONFIG
`;

const FLAGS = [
  "mesh-admin",
  "check-recalled-bytes",
  "admin-socket",
  "holder-socket",
  "watch",
  "run-dir",
  "recall-uid",
  "mode",
  "recall-timeout-ms",
  "log-level",
  "max-recalls",
  "caller-share",
  "config",
];

/** A config-file value as a string; objects and arrays are refused. */
function scalar(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return String(v);
  throw new Error("config values must be strings, numbers or booleans");
}

export function loadListenerConfig(
  argv: readonly string[],
  env: Record<string, string | undefined> = process.env,
): ListenerConfig {
  const flags = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m || !FLAGS.includes(m[1])) throw new Error(`unknown option '${argv[i]}'`);
    const value = m[2] ?? argv[++i];
    if (value === undefined) throw new Error(`option '--${m[1]}' needs a value`);
    flags.set(m[1], [...(flags.get(m[1]) ?? []), value]);
  }
  const configPath = flags.get("config")?.[0] ?? env.FANRECALL_CONFIG;
  const file = configPath ? (JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>) : {};
  const one = (flag: string, envName: string, key: string): string | undefined =>
    flags.get(flag)?.at(-1) ?? env[envName] ?? scalar(file[key]);
  const watch =
    flags.get("watch") ??
    env.FANRECALL_WATCH?.split(":").filter(Boolean) ??
    (Array.isArray(file.watch) ? file.watch.map(String) : []);
  if (watch.length === 0) throw new Error("at least one --watch DIR is required");
  const mode = one("mode", "FANRECALL_MODE", "mode") ?? "auto";
  if (mode !== "auto" && mode !== "range" && mode !== "whole")
    throw new Error(`mode must be auto, range or whole, not '${mode}'`);
  const timeout = Number(one("recall-timeout-ms", "FANRECALL_RECALL_TIMEOUT_MS", "recallTimeoutMs") ?? "30000");
  if (!Number.isSafeInteger(timeout) || timeout < 100)
    throw new Error("recall timeout must be an integer of at least 100 ms");
  const meshAdmin = one("mesh-admin", "FANRECALL_MESH_ADMIN", "meshAdmin") ?? "false";
  if (meshAdmin !== "true" && meshAdmin !== "false")
    throw new Error(`mesh-admin must be true or false, not '${meshAdmin}'`);
  const checkBytes = one("check-recalled-bytes", "FANRECALL_CHECK_RECALLED_BYTES", "checkRecalledBytes") ?? "true";
  if (checkBytes !== "true" && checkBytes !== "false")
    throw new Error(`check-recalled-bytes must be true or false, not '${checkBytes}'`);
  const recallUidText = one("recall-uid", "FANRECALL_RECALL_UID", "recallUid") ?? systemUserUid("fanrecall");
  if (recallUidText === undefined)
    throw new Error(
      "no --recall-uid given and no system user 'fanrecall' (create it, or give the recall service's uid)",
    );
  const recallUid = Number(recallUidText);
  if (!Number.isSafeInteger(recallUid) || recallUid <= 0 || recallUid === 65534)
    throw new Error(
      "recall uid must be a positive integer, never root and never 65534 (nobody: users' programs run as it)",
    );
  const maxRecalls = Number(one("max-recalls", "FANRECALL_MAX_RECALLS", "maxRecalls") ?? "256");
  if (!Number.isSafeInteger(maxRecalls) || maxRecalls < 1 || maxRecalls > 65536)
    throw new Error("max-recalls must be an integer from 1 to 65536");
  const callerShare = Number(one("caller-share", "FANRECALL_CALLER_SHARE", "callerShare") ?? "0.5");
  if (!Number.isFinite(callerShare) || callerShare <= 0 || callerShare > 1)
    throw new Error("caller-share must be a fraction above 0 and at most 1");
  return {
    watch: watch.map((w) => resolve(w)),
    runDir: resolve(one("run-dir", "FANRECALL_RUN_DIR", "runDir") ?? "/run/fanrecall"),
    recallUid,
    meshAdmin: meshAdmin === "true",
    checkRecalledBytes: checkBytes === "true",
    mode,
    recallTimeoutMs: timeout,
    maxRecalls,
    callerShare,
    logLevel: one("log-level", "FANRECALL_LOG_LEVEL", "logLevel") ?? "info",
    adminSocket:
      one("admin-socket", "FANRECALL_ADMIN_SOCKET", "adminSocket") ??
      adminSocketPath(resolve(one("run-dir", "FANRECALL_RUN_DIR", "runDir") ?? "/run/fanrecall")),
    holderSocket:
      one("holder-socket", "FANRECALL_HOLDER_SOCKET", "holderSocket") ??
      join(resolve(one("run-dir", "FANRECALL_RUN_DIR", "runDir") ?? "/run/fanrecall"), "holder", "holder.sock"),
  };
}

/** Throws when a watched directory shares a filesystem with something the listener reads. */
export function refuseSelfWatch(config: ListenerConfig): void {
  const codeDir = join(dirname(fileURLToPath(import.meta.url)), "..");
  const own: Array<[string, number]> = [
    ["the listener's code", statSync(codeDir).dev],
    ["the node binary", statSync(process.execPath).dev],
    ["the run directory", statSync(config.runDir).dev],
  ];
  for (const dir of config.watch) {
    const st = statSync(dir);
    if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
    for (const [what, dev] of own) {
      if (st.dev === dev) {
        throw new Error(
          `${dir} is on the same filesystem as ${what}; fanrecall watches dedicated data filesystems only (the listener would wait on itself)`,
        );
      }
    }
  }
}

/** The uid of a user in /etc/passwd, if there is one. */
function systemUserUid(name: string): string | undefined {
  let passwd: string;
  try {
    passwd = readFileSync("/etc/passwd", "utf8");
  } catch {
    return undefined;
  }
  for (const line of passwd.split("\n")) {
    const f = line.split(":");
    if (f[0] === name && /^\d+$/.test(f[2] ?? "")) return f[2];
  }
  return undefined;
}

export function adminSocketPath(runDir: string): string {
  return join(runDir, "listener", "admin.sock");
}
