// config: the listener's settings, from flags, the environment (FANRECALL_*) and/or a JSON
// file (--config). It holds no S3 settings at all: the listener never talks to the store.
//
// Owns: its settings table (parsed, checked and turned into --help by settings/), the
// defaults that depend on other settings or on /etc/passwd, reading the recall rules file
// (once, at start; recall-rules.ts checks it), and the safety check that
// refuses to watch a filesystem the listener itself reads from (its code, node, its run dir,
// its stdout), which would deadlock.
import { readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { RUN_DIR_WORD, adminSocketPath, holderSocketPath } from "../ipc/run-dir.js";
import { helpText } from "../settings/help-text.js";
import { loadSettings, parseValue } from "../settings/settings.js";
import {
  LOG_LEVEL_SETTING,
  MODE_SETTING,
  NAMESPACE_SETTING,
  RECALL_RULES_SETTING,
  RECALL_TIMEOUT_MS_SETTING,
  RUN_DIR_SETTING,
} from "../settings/shared-settings.js";
import { MAX_RULES_BYTES, parseRecallRules } from "./recall-rules.js";
import type { RecallRule } from "./recall-rules.js";
import { watchNamespaces } from "./file-places.js";
import type { CommandSpec, IntSetting, SettingsTable } from "../settings/setting-types.js";

export interface ListenerConfig {
  readonly watch: readonly string[];
  /** The namespace of each watch in the store (same order). */
  readonly namespaces: readonly string[];
  readonly runDir: string;
  readonly recallUid: number;
  readonly mode: "auto" | "range" | "whole";
  readonly recallTimeoutMs: number;
  /** Distinct files recalled at once. */
  readonly maxRecalls: number;
  /** The part of maxRecalls one uid or cgroup may hold. */
  readonly callerShare: number;
  /** Who may recall (--recall-rules), checked; empty without a rules file. */
  readonly recallRules: readonly RecallRule[];
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

/** The uid the fd channel's peer must have (also checks the system user's uid). */
const RECALL_UID = {
  name: "recall-uid",
  key: "recallUid",
  env: "FANRECALL_RECALL_UID",
  type: "int",
  arg: "UID",
  min: 1,
  max: 4294967294,
  check: (uid: number) => (uid === 65534 ? "a uid other than 65534 (nobody, which users' programs run as)" : null),
  defaultText: "the uid of the system user 'fanrecall'",
  help: "the recall service's uid: file descriptors go to a peer with this uid only; never 0, never 65534",
} as const satisfies IntSetting;

const SETTINGS = [
  {
    name: "watch",
    key: "watch",
    env: "FANRECALL_WATCH",
    type: "list",
    separator: ":",
    paths: true,
    arg: "DIR",
    required: true,
    help: "a directory on a dedicated data filesystem to watch",
  },
  NAMESPACE_SETTING,
  RUN_DIR_SETTING,
  RECALL_UID,
  MODE_SETTING,
  RECALL_TIMEOUT_MS_SETTING,
  {
    name: "max-recalls",
    key: "maxRecalls",
    env: "FANRECALL_MAX_RECALLS",
    type: "int",
    min: 1,
    max: 65536,
    default: 256,
    help: "distinct files recalled at once; readers of a file being recalled wait for it uncounted",
  },
  {
    name: "caller-share",
    key: "callerShare",
    env: "FANRECALL_CALLER_SHARE",
    type: "number",
    arg: "FRACTION",
    above: 0,
    max: 1,
    default: 0.5,
    help: "the part of max-recalls one uid or one cgroup may hold; beyond it, EAGAIN",
  },
  RECALL_RULES_SETTING,
  LOG_LEVEL_SETTING,
  {
    name: "admin-socket",
    key: "adminSocket",
    env: "FANRECALL_ADMIN_SOCKET",
    type: "path",
    defaultText: adminSocketPath(RUN_DIR_WORD),
    help: "the root-only socket of the admin commands",
  },
  {
    name: "holder-socket",
    key: "holderSocket",
    env: "FANRECALL_HOLDER_SOCKET",
    type: "path",
    allowEmpty: true,
    defaultText: holderSocketPath(RUN_DIR_WORD),
    help: "the group holder's socket; with none, a crash of this process lets held readers through",
  },
  {
    name: "mesh-admin",
    key: "meshAdmin",
    env: "FANRECALL_MESH_ADMIN",
    type: "bool",
    default: false,
    help:
      "serve status, restore and archive requests that the recall service relays from its TLS mesh admin API; " +
      "paths are resolved here, beneath a --watch DIR",
  },
  {
    name: "check-recalled-bytes",
    key: "checkRecalledBytes",
    env: "FANRECALL_CHECK_RECALLED_BYTES",
    type: "bool",
    default: true,
    help:
      "hash every recalled byte here and compare it with the stub's trusted hashes before the access goes on; " +
      "false exists only to measure that cost, and lets a compromised recall service show readers any bytes",
  },
] as const satisfies SettingsTable;

export const LISTENER_SPEC = {
  usage: "fanrecall listener --watch DIR [--watch DIR ...] [options]",
  about: `Runs the root fanotify listener: marks the filesystems of the watched directories, holds
accesses to stubs while the recall service brings their data back, and answers the kernel.
It holds no S3 credentials and opens no network port.`,
  settings: SETTINGS,
  configFile: true,
  footer: `Signals: SIGTERM/SIGINT stop fanrecall here (held accesses are answered, marks removed, the
group closed); SIGUSR2 exits for an upgrade, leaving the group and its queued accesses with
the holder for the next listener.`,
} as const satisfies CommandSpec;

export const LISTENER_HELP = helpText(LISTENER_SPEC);

export function loadListenerConfig(
  argv: readonly string[],
  env: Record<string, string | undefined> = process.env,
): ListenerConfig {
  const s = loadSettings(LISTENER_SPEC, argv, env);
  const recallUid = s.recallUid ?? systemUserUid("fanrecall");
  if (recallUid === undefined)
    throw new Error(
      "no --recall-uid given and no system user 'fanrecall' (create it, or give the recall service's uid)",
    );
  return {
    watch: s.watch,
    namespaces: watchNamespaces(s.watch, s.namespaces),
    runDir: s.runDir,
    recallUid,
    mode: s.mode,
    recallTimeoutMs: s.recallTimeoutMs,
    maxRecalls: s.maxRecalls,
    callerShare: s.callerShare,
    recallRules: s.recallRules === undefined ? [] : readRecallRules(s.recallRules),
    logLevel: s.logLevel,
    adminSocket: s.adminSocket ?? adminSocketPath(s.runDir),
    holderSocket: s.holderSocket ?? holderSocketPath(s.runDir),
    meshAdmin: s.meshAdmin,
    checkRecalledBytes: s.checkRecalledBytes,
  };
}

/** Reads and checks a rules file (read once, at start); throws one line naming the file and the fault. */
export function readRecallRules(path: string): RecallRule[] {
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new Error("not a regular file");
    if (st.size > MAX_RULES_BYTES) throw new Error(`larger than ${MAX_RULES_BYTES} bytes`);
    return parseRecallRules(readFileSync(path, "utf8"));
  } catch (err: unknown) {
    throw new Error(`--recall-rules ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
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

/** The uid of a user in /etc/passwd, if there is one, checked as a --recall-uid is. */
function systemUserUid(name: string): number | undefined {
  let passwd: string;
  try {
    passwd = readFileSync("/etc/passwd", "utf8");
  } catch {
    return undefined;
  }
  for (const line of passwd.split("\n")) {
    const f = line.split(":");
    if (f[0] === name && f[2] !== undefined) {
      return parseValue(RECALL_UID, f[2], ` (the uid of the system user '${name}')`) as number;
    }
  }
  return undefined;
}
