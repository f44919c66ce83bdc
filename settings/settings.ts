// settings: loads one command's settings from its table (setting-types.ts): flags through
// node:util parseArgs, then the environment, then the --config JSON file, then the default,
// the first that gives a value winning. Every value is checked by its type, and every refusal
// reads the same way: `--NAME: must be RULE, not 'VALUE'`, followed by where the value came
// from when that was not the command line. The rule is the same text --help shows
// (describe(), used by help-text.ts).
//
// Owns: parsing and validation; reading the --config file (by the name the operator gave).
// Must not own: what a command does with its settings, or any other side effect. Imports
// nothing but node: builtins: the root side and the recall service both load it. Holds no
// fds beyond the config file's read.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import type { CommandSpec, Setting, Settings, SettingsTable } from "./setting-types.js";

const MAX_ID = 4294967294;

/** The rule a value of `s` must follow, as --help and every error say it. */
export function describe(s: Setting): string {
  switch (s.type) {
    case "int":
      return `an integer from ${s.min} to ${s.max}`;
    case "number":
      return `a number ${s.above !== undefined ? `above ${s.above}` : `from ${s.min ?? 0}`} and at most ${s.max}`;
    case "string":
      return s.shape ?? "any text";
    case "path":
      return s.allowEmpty ? 'a path, or "" for none' : "a path";
    case "bool":
      return "true or false";
    case "flag":
      return "given without a value";
    case "list":
      return s.paths ? "a path" : "a non-empty value";
    case "enum":
      return `${s.choices.slice(0, -1).join(", ")} or ${s.choices.at(-1)}`;
    case "user":
      return `UID or UID:GID (integers from 0 to ${MAX_ID})`;
    case "address":
      return 'HOST:PORT (port 0 to 65535), or "" for none';
    case "duration":
      return `a duration such as 0, 500ms, 90s, 15m, 1h or 30d, from ${formatDuration(s.min)} to ${formatDuration(s.max)}`;
  }
}

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds from `0`, `500ms`, `90s`, `15m`, `1h`, `30d`; null for anything else. */
export function parseDuration(raw: string): number | null {
  const m = /^(\d{1,9})(ms|s|m|h|d)?$/.exec(raw);
  if (!m || (m[2] === undefined && m[1] !== "0")) return null;
  return Number(m[1]) * UNIT_MS[m[2] ?? "ms"];
}

/** The shortest exact text of a duration (`30d`, `90s`, `1500ms`). */
export function formatDuration(ms: number): string {
  for (const unit of ["d", "h", "m", "s"])
    if (ms !== 0 && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  return ms === 0 ? "0" : `${ms}ms`;
}

/** A refused value: `--name: must be RULE, not 'VALUE'` plus its source. */
function refuse(s: Setting, raw: string, from: string, rule = describe(s)): Error {
  return new Error(`--${s.name}: must be ${rule}, not '${raw}'${from}`);
}

function integer(raw: string): number | null {
  if (!/^-?\d+$/.test(raw)) return null;
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : null;
}

function user(raw: string): { uid: number; gid: number } | null {
  const m = /^(\d+)(?::(\d+))?$/.exec(raw);
  if (!m) return null;
  const uid = Number(m[1]);
  const gid = Number(m[2] ?? m[1]);
  return uid <= MAX_ID && gid <= MAX_ID ? { uid, gid } : null;
}

function address(raw: string): { host: string; port: number } | null {
  const m = /^(.+):(\d{1,5})$/.exec(raw);
  if (!m || Number(m[2]) > 65535) return null;
  const host = m[1].replace(/^\[(.*)\]$/, "$1");
  return host === "" ? null : { host, port: Number(m[2]) };
}

/**
 * One value of `s` from its text. `from` says where it came from (" (from FANRECALL_X)"; ""
 * for the command line), for the error. Lists take one item at a time.
 */
export function parseValue(s: Setting, raw: string, from = ""): unknown {
  switch (s.type) {
    case "int": {
      const n = integer(raw);
      if (n === null || n < s.min || n > s.max) throw refuse(s, raw, from);
      const bad = s.check?.(n);
      if (bad) throw refuse(s, raw, from, bad);
      return n;
    }
    case "number": {
      const n = /^-?(\d+\.?\d*|\.\d+)$/.test(raw) ? Number(raw) : NaN;
      const low = s.above !== undefined ? n > s.above : n >= (s.min ?? 0);
      if (!Number.isFinite(n) || !low || n > s.max) throw refuse(s, raw, from);
      return n;
    }
    case "string":
      if (s.pattern && !s.pattern.test(raw)) throw refuse(s, raw, from);
      return raw;
    case "path":
      if (raw === "") {
        if (!s.allowEmpty) throw refuse(s, raw, from);
        return "";
      }
      return resolve(raw);
    case "list":
      return s.paths ? resolve(raw) : raw;
    case "bool":
      if (raw !== "true" && raw !== "false") throw refuse(s, raw, from);
      return raw === "true";
    case "flag":
      throw refuse(s, raw, from);
    case "enum":
      if (!s.choices.includes(raw)) throw refuse(s, raw, from);
      return raw;
    case "user": {
      const u = user(raw);
      if (u === null) throw refuse(s, raw, from);
      const bad = s.check?.(u);
      if (bad) throw refuse(s, raw, from, bad);
      return u;
    }
    case "duration": {
      const ms = parseDuration(raw);
      if (ms === null || ms < s.min || ms > s.max) throw refuse(s, raw, from);
      return ms;
    }
    case "address": {
      if (raw === "") return undefined;
      const a = address(raw);
      if (a === null) throw refuse(s, raw, from);
      return a;
    }
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/** Flag values by setting name, and the positional arguments, from argv. */
function parseFlags(
  spec: CommandSpec,
  argv: readonly string[],
): { flags: Map<string, string[]>; positionals: string[] } {
  const known = new Map<string, Setting>(spec.settings.map((s) => [s.name, s]));
  const options: Record<string, { type: "string" | "boolean"; multiple: true }> = {};
  for (const s of spec.settings) options[s.name] = { type: s.type === "flag" ? "boolean" : "string", multiple: true };
  if (spec.configFile) options.config = { type: "string", multiple: true };
  // Not strict: unknown options and missing values are refused below, in this module's words,
  // and a value may start with '-' (`--recall-uid -1` is a bad uid, not a missing one).
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  const flags = new Map<string, string[]>();
  const positionals: string[] = [];
  for (const t of tokens) {
    if (t.kind === "positional") {
      if (!spec.positionals) throw new Error(`unexpected argument '${t.value}'`);
      positionals.push(t.value);
    } else if (t.kind === "option") {
      const s = known.get(t.name);
      if (!s && !(spec.configFile && t.name === "config")) throw new Error(`unknown option '${t.rawName}'`);
      if (s?.type === "flag") {
        if (t.value !== undefined) throw new Error(`--${t.name}: takes no value, not '${t.value}'`);
        flags.set(t.name, ["true"]);
        continue;
      }
      if (t.value === undefined) throw new Error(`--${t.name}: needs a value`);
      flags.set(t.name, [...(flags.get(t.name) ?? []), t.value]);
    }
  }
  return { flags, positionals };
}

/** The --config file's object, or {} without one. */
function readConfigFile(path: string | undefined): { file: Record<string, unknown>; path: string } {
  if (path === undefined || path === "") return { file: {}, path: "" };
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (err: unknown) {
    throw new Error(`--config: cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error(`--config: ${path} must hold a JSON object`);
  }
  return { file: parsed as Record<string, unknown>, path };
}

/** A config-file value as text (lists: as items); objects, arrays and null are refused. */
function fileText(s: Setting, v: unknown, from: string): string[] {
  if (s.type === "list" && Array.isArray(v) && v.every((x) => typeof x === "string")) return v;
  if (typeof v === "string" && s.type === "list") return v.split(s.separator);
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return [String(v)];
  throw refuse(s, JSON.stringify(v), from, s.type === "list" ? "an array of strings" : "a string, number or boolean");
}

/** The raw texts of `s` and where they came from (flags, then environment, then file). */
function rawOf(
  s: Setting,
  flags: Map<string, string[]>,
  env: Env,
  cfg: { file: Record<string, unknown>; path: string },
) {
  const given = flags.get(s.name);
  if (given) return { texts: s.type === "list" ? given : [given.at(-1) ?? ""], from: "" };
  const e = s.env === undefined ? undefined : env[s.env];
  if (e !== undefined && s.type !== "flag") {
    return { texts: s.type === "list" ? e.split(s.separator) : [e], from: ` (from ${s.env})` };
  }
  if (Object.hasOwn(cfg.file, s.key) && s.type !== "flag") {
    const from = ` (from "${s.key}" in ${cfg.path})`;
    return { texts: fileText(s, cfg.file[s.key], from), from };
  }
  return null;
}

/** Where a required setting may be given, for the error that says it is missing. */
function whereToGive(s: Setting, configFile: boolean): string {
  const ways = [`--${s.name}${s.type === "flag" ? "" : ` ${s.arg ?? "VALUE"}`}`];
  if (s.env) ways.push(s.env);
  if (configFile) ways.push(`"${s.key}" in the --config file`);
  return ways.join(", or ");
}

/** Loads `spec`'s settings from argv, env and (when the spec takes one) a --config file. */
export function loadSettings<T extends SettingsTable>(
  spec: CommandSpec<T>,
  argv: readonly string[],
  env: Env = process.env,
): Settings<T> {
  const { flags, positionals } = parseFlags(spec, argv);
  const cfg = spec.configFile
    ? readConfigFile(flags.get("config")?.at(-1) ?? env.FANRECALL_CONFIG)
    : { file: {}, path: "" };
  const out: Record<string, unknown> = {};
  for (const s of spec.settings) {
    const raw = rawOf(s, flags, env, cfg);
    let value: unknown;
    if (s.type === "flag") value = raw !== null;
    else if (s.type === "list")
      value = (raw?.texts ?? []).filter((t) => t !== "").map((t) => parseValue(s, t, raw?.from));
    else value = raw === null ? ("default" in s ? s.default : undefined) : parseValue(s, raw.texts[0] ?? "", raw.from);
    const missing = value === undefined || (Array.isArray(value) && value.length === 0);
    if (s.required && missing) throw new Error(`${whereToGive(s, spec.configFile === true)} is required`);
    out[s.key] = value;
  }
  if (spec.positionals && positionals.length < spec.positionals.min) {
    throw new Error(
      `at least ${spec.positionals.min === 1 ? "one" : spec.positionals.min} ${spec.positionals.name} is required`,
    );
  }
  out.positionals = positionals;
  return out as Settings<T>;
}
