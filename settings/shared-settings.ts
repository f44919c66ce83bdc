// shared-settings: the settings both halves (and the admin commands) take in the same words:
// the run directory that holds every socket, and the log level. One definition each, so the
// flag, environment variable, config key, default and rule cannot drift between them.
//
// Owns: these two table entries. Must not import anything but this directory. Holds no fds.
import type { EnumSetting, PathSetting } from "./setting-types.js";

/** pino's levels. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

export const RUN_DIR_SETTING = {
  name: "run-dir",
  key: "runDir",
  env: "FANRECALL_RUN_DIR",
  type: "path",
  arg: "DIR",
  default: "/run/fanrecall",
  help: "the directory of fanrecall's sockets ('fanrecall start --state-dir' uses STATE_DIR/run)",
} as const satisfies PathSetting;

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
