// namespace-settings: the settings reconcile, rebuild and undelete share (--json, --run-dir).
// Owns: that table. Holds no fds.
import type { FlagSetting, PathSetting } from "../settings/setting-types.js";
import { RUN_DIR_SETTING } from "../settings/shared-settings.js";

const JSON_OUTPUT = {
  name: "json",
  key: "json",
  type: "flag",
  help: "one JSON object a line, then a summary line",
} as const satisfies FlagSetting;

const RUN_DIR = {
  name: RUN_DIR_SETTING.name,
  key: RUN_DIR_SETTING.key,
  env: RUN_DIR_SETTING.env,
  type: RUN_DIR_SETTING.type,
  arg: RUN_DIR_SETTING.arg,
  help: "the run dir of the fanrecall instance to ask (default: the running instance that watches DIR)",
} as const satisfies PathSetting;

export const NAMESPACE_ADMIN_SETTINGS = [JSON_OUTPUT, RUN_DIR] as const;
