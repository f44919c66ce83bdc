// namespace-settings: the settings reconcile, rebuild and undelete share (--json, --run-dir), and
// the retention and interval of reconcile (which start takes too).
// Owns: that table. Holds no fds.
import type { DurationSetting, FlagSetting, PathSetting } from "../settings/setting-types.js";
import { RUN_DIR_SETTING } from "../settings/shared-settings.js";

const JSON_OUTPUT = {
  name: "json",
  key: "json",
  type: "flag",
  help: "one JSON object a line, then a summary line",
} as const satisfies FlagSetting;

/** --run-dir without a default: the instance watching the path is found (instance-registry.ts). */
export const ADMIN_RUN_DIR = {
  name: RUN_DIR_SETTING.name,
  key: RUN_DIR_SETTING.key,
  env: RUN_DIR_SETTING.env,
  type: RUN_DIR_SETTING.type,
  arg: RUN_DIR_SETTING.arg,
  help: "the run dir of the fanrecall instance to ask (default: the running instance that watches DIR)",
} as const satisfies PathSetting;

export const NAMESPACE_ADMIN_SETTINGS = [JSON_OUTPUT, ADMIN_RUN_DIR] as const;

const DAY_MS = 86_400_000;

export const RETAIN_SETTING = {
  name: "retain",
  key: "retain",
  type: "duration",
  min: 0,
  max: 36_500 * DAY_MS,
  default: 30 * DAY_MS,
  help: "delete an object once no file has referred to it for this long (0: at once)",
} as const satisfies DurationSetting;

export const RECONCILE_EVERY_SETTING = {
  name: "reconcile-every",
  key: "reconcileEvery",
  type: "duration",
  min: 0,
  max: 365 * DAY_MS,
  default: 3_600_000,
  help: "run 'fanrecall reconcile' on each watched directory this often (0: never); a rebuild loses what changed since the last one",
} as const satisfies DurationSetting;
