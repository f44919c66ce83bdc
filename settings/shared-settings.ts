// shared-settings: the settings that more than one command takes in the same words: the
// run directory that holds every socket and the log level (both halves, the admin
// commands), the recall mode, timeout and rules file (listener, start) and the chunk size (recall
// service, start). One definition each, so the flag, environment variable, config key,
// default and rule cannot drift between them.
//
// Owns: these two table entries. Must not import anything but this directory and the run
// dir's layout (ipc/run-dir.ts, which imports nothing). Holds no fds.
import { DEFAULT_RUN_DIR, stateRunDir } from "../ipc/run-dir.js";
import type { EnumSetting, IntSetting, ListSetting, PathSetting } from "./setting-types.js";

/** pino's levels. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

export const RUN_DIR_SETTING = {
  name: "run-dir",
  key: "runDir",
  env: "FANRECALL_RUN_DIR",
  type: "path",
  arg: "DIR",
  default: DEFAULT_RUN_DIR,
  help: `the directory of fanrecall's sockets ('fanrecall start --state-dir' uses ${stateRunDir("STATE_DIR")})`,
} as const satisfies PathSetting;

/** One namespace per --watch, in the same order (listener, start). */
export const NAMESPACE_SETTING = {
  name: "namespace",
  key: "namespaces",
  env: "FANRECALL_NAMESPACE",
  type: "list",
  separator: ":",
  arg: "NAME",
  defaultText: "HOSTNAME-WATCH-PATH, e.g. node1-srv-video",
  help: "the namespace of a --watch DIR in the store (one per --watch, same order): its objects, records and snapshots go under PREFIX/NAME/",
} as const satisfies ListSetting;

export const LOG_LEVEL_SETTING = {
  name: "log-level",
  key: "logLevel",
  env: "FANRECALL_LOG_LEVEL",
  type: "enum",
  arg: "LEVEL",
  choices: LOG_LEVELS,
  default: "info",
  help: "the least severe level logged",
} as const satisfies EnumSetting;

export const MODE_SETTING = {
  name: "mode",
  key: "mode",
  env: "FANRECALL_MODE",
  type: "enum",
  choices: ["auto", "range", "whole"],
  default: "auto",
  help: "range recall, whole-file recall, or range where the kernel and filesystem allow it",
} as const satisfies EnumSetting;

export const RECALL_TIMEOUT_MS_SETTING = {
  name: "recall-timeout-ms",
  key: "recallTimeoutMs",
  env: "FANRECALL_RECALL_TIMEOUT_MS",
  type: "int",
  arg: "MS",
  min: 100,
  // setTimeout's limit: beyond it a timer fires at once.
  max: 2147483647,
  default: 30000,
  help: "how long one recall may take before the access fails",
} as const satisfies IntSetting;

/** Who may recall: a JSON rules file the listener reads once at start (listener, start). */
export const RECALL_RULES_SETTING = {
  name: "recall-rules",
  key: "recallRules",
  env: "FANRECALL_RECALL_RULES",
  type: "path",
  arg: "FILE",
  defaultText: "none: every caller may recall",
  help: "a JSON array of recall rules ({name, match: {command, uid, cgroup, pod}, action: allow|deny|low, errno, max}); the first match decides",
} as const satisfies PathSetting;

export const CHUNK_SIZE_SETTING = {
  name: "chunk-size",
  key: "chunkSize",
  env: "FANRECALL_CHUNK_SIZE",
  type: "int",
  arg: "BYTES",
  min: 4096,
  max: 1073741824,
  check: (n: number) => (n % 4096 === 0 ? null : "a multiple of 4096"),
  default: 4194304,
  help: "the unit of range recall, a multiple of 4096",
} as const satisfies IntSetting;
