// start-settings: the settings of `fanrecall start` (its table, its --help and the
// arguments it derives: the state and run directories), parsed by settings/. The flags that
// the listener and the recall service also take keep the same environment variables, rules
// and defaults here, so `start` refuses a bad value before it starts anything.
//
// Owns: the table and its derived defaults. Must not own: starting anything. Holds no fds.
import { DEFAULT_RUN_DIR, INSTANCES_DIR, stateRunDir } from "../ipc/run-dir.js";
import { helpText } from "../settings/help-text.js";
import { loadSettings } from "../settings/settings.js";
import type { CommandSpec } from "../settings/setting-types.js";
import {
  CHUNK_SIZE_SETTING,
  MODE_SETTING,
  NAMESPACE_SETTING,
  RECALL_RULES_SETTING,
  RECALL_TIMEOUT_MS_SETTING,
} from "../settings/shared-settings.js";
import { readRecallRules } from "../listener/config.js";
import { RECONCILE_EVERY_SETTING, RETAIN_SETTING } from "./namespace-settings.js";
import { RECALL_USER_NAME, checkRecallUid } from "./system-user.js";

export const START_SPEC = {
  usage: "fanrecall start --watch DIR [--watch DIR ...] [--state-dir DIR] [options]",
  about: `Runs fanrecall in the foreground as root: the listener, the recall service as an
unprivileged user, and, when FANRECALL_S3_ENDPOINT is not set, an embedded demo S3 server
(s3rver) on 127.0.0.1 with its data in STATE_DIR/s3. Stop it with Ctrl-C or SIGTERM.

The recall service and the embedded store run as the system user '${RECALL_USER_NAME}' (created
when missing; never root or nobody/65534) and are non-dumpable: no other process, not even
one of their own uid, can read their memory or environment. The embedded store's credentials
are generated on the first start into STATE_DIR/s3-credentials/{access-key,secret-key} (0600,
the recall user's) and reused; it serves only connections from the recall user's sockets.`,
  settings: [
    {
      name: "watch",
      key: "watch",
      type: "list",
      separator: ":",
      paths: true,
      arg: "DIR",
      required: true,
      help: "a directory on a dedicated ext4/xfs/btrfs (range recall) or other filesystem (whole-file recall)",
    },
    {
      name: "state-dir",
      key: "stateDir",
      type: "path",
      arg: "DIR",
      defaultText: `/var/lib/fanrecall, with sockets in ${DEFAULT_RUN_DIR}; when given, sockets go to ${stateRunDir("STATE_DIR")}`,
      help: "where the embedded store's data and credentials are",
    },
    {
      name: "run-dir",
      key: "runDir",
      env: "FANRECALL_RUN_DIR",
      type: "path",
      arg: "DIR",
      defaultText: "as --state-dir says",
      help: "where the sockets go",
    },
    {
      name: "recall-user",
      key: "recallUser",
      env: "FANRECALL_RECALL_USER",
      type: "user",
      defaultText: `the system user '${RECALL_USER_NAME}'`,
      help: "the user the recall service and the embedded store run as; never 0 or 65534",
    },
    { ...NAMESPACE_SETTING, help: `${NAMESPACE_SETTING.help} (the listener's --namespace)` },
    RECONCILE_EVERY_SETTING,
    { ...RETAIN_SETTING, help: `the periodic reconcile's --retain: ${RETAIN_SETTING.help}` },
    { ...MODE_SETTING, help: "the listener's --mode" },
    { ...RECALL_TIMEOUT_MS_SETTING, help: "the listener's --recall-timeout-ms" },
    { ...RECALL_RULES_SETTING, help: `the listener's --recall-rules: ${RECALL_RULES_SETTING.help}` },
    { ...CHUNK_SIZE_SETTING, help: "the recall service's --chunk-size" },
    {
      name: "policy-file",
      key: "policyFile",
      type: "path",
      arg: "FILE",
      help: "run the space manager beside the rest on every --watch DIR: 'fanrecall policy --config FILE' (a JSON object keyed as 'fanrecall policy --help' says)",
    },
  ],
  footer: `S3 settings come from the environment: FANRECALL_S3_ENDPOINT, FANRECALL_S3_ACCESS_KEY,
FANRECALL_S3_SECRET_KEY_FILE (a file the recall user can read; FANRECALL_S3_SECRET_KEY is
still taken, for compatibility), FANRECALL_S3_BUCKET (default fanrecall), FANRECALL_S3_REGION
(default us-east-1). Only the recall service gets them. The recall service's other settings (FANRECALL_METRICS_ADDRESS, the
mesh admin API's FANRECALL_MESH_ADMIN_ADDRESS and FANRECALL_MESH_TLS_*) come from the
environment too; see 'fanrecall recall-service --help'. With a mesh admin address set, the
listener serves the requests it relays (--mesh-admin true).

Then, from another terminal (as root); they find this instance by the path they are given
(it is recorded in ${INSTANCES_DIR} while it runs), whatever its --state-dir:
  fanrecall archive|release|restore PATH...
  fanrecall status [--json] PATH...
  fanrecall pin|unpin PATH..., fanrecall policy --once DIR...
  fanrecall reconcile|rebuild DIR, fanrecall undelete PATH...`,
} as const satisfies CommandSpec;

export const START_HELP = helpText(START_SPEC);

export interface StartArgs {
  readonly watch: string[];
  readonly namespaces: string[];
  readonly reconcileEveryMs: number;
  readonly retainMs: number;
  readonly stateDir: string;
  readonly runDir: string;
  /** null: the system user RECALL_USER_NAME (created by startCommand when missing). */
  readonly user: { uid: number; gid: number } | null;
  readonly mode: string;
  readonly timeoutMs: string;
  readonly chunkSize: string;
  /** The space manager's --config file, or null for none. */
  readonly policyFile: string | null;
  /** The listener's rules file (checked here first), or null. */
  readonly recallRules: string | null;
}

export function parseStartArgs(
  argv: readonly string[],
  env: Record<string, string | undefined> = process.env,
): StartArgs {
  const s = loadSettings(START_SPEC, argv, env);
  if (s.recallUser) checkRecallUid(s.recallUser.uid, "--recall-user");
  // A bad rules file stops start here, before anything runs (the listener reads it again).
  if (s.recallRules !== undefined) readRecallRules(s.recallRules);
  // Without --state-dir: /var/lib/fanrecall and /run/fanrecall (the admin commands' default).
  // With it: everything under it, sockets in STATE_DIR/run.
  const runDir = s.runDir ?? (s.stateDir === undefined ? DEFAULT_RUN_DIR : stateRunDir(s.stateDir));
  return {
    watch: s.watch,
    namespaces: s.namespaces,
    reconcileEveryMs: s.reconcileEvery,
    retainMs: s.retain,
    stateDir: s.stateDir ?? "/var/lib/fanrecall",
    runDir,
    user: s.recallUser ?? null,
    mode: s.mode,
    timeoutMs: String(s.recallTimeoutMs),
    chunkSize: String(s.chunkSize),
    policyFile: s.policyFile ?? null,
    recallRules: s.recallRules ?? null,
  };
}
