// setting-types: the shape of one command's settings table, and the typed object a table
// loads into. A table is a list of settings, each naming its flag (--name), its environment
// variable (FANRECALL_*), its key (the field of the result and the key in a --config JSON
// file), its type with the type's bounds, its default and its help line; both halves and
// the CLI declare their settings this way, so parsing, validation, error text and --help
// come from one place (settings.ts, help-text.ts).
//
// Owns: types only. Must not import anything but node: builtins (the root side and the
// recall service both load it). Holds no fds.

interface Common<K extends string> {
  /** The flag without its dashes: `recall-timeout-ms` is `--recall-timeout-ms`. */
  readonly name: string;
  /** The field of the loaded object, and the key in a --config JSON file. */
  readonly key: K;
  /** The environment variable, if the setting has one. */
  readonly env?: string;
  /** The value's name in --help (`DIR`, `MS`); the type's own when absent. */
  readonly arg?: string;
  readonly help: string;
  /** Without a value from anywhere, loading fails (for a list: without one item). */
  readonly required?: boolean;
  /** What --help says the default is, when it is not a constant (or not the `default`). */
  readonly defaultText?: string;
}

/** A whole number; never NaN, never a fraction, never `1e3` or `0x10`. */
export interface IntSetting<K extends string = string> extends Common<K> {
  readonly type: "int";
  readonly min: number;
  readonly max: number;
  readonly default?: number;
  /** Further rules: null when the value is fine, else what it must be ("not 65534 (nobody)"). */
  readonly check?: (value: number) => string | null;
}

/** A decimal number within bounds; `above` is an exclusive lower bound, `min` an inclusive one. */
export interface NumberSetting<K extends string = string> extends Common<K> {
  readonly type: "number";
  readonly above?: number;
  readonly min?: number;
  readonly max: number;
  readonly default?: number;
}

/** Any text ("" included), or text matching `pattern`, which `shape` describes. */
export interface StringSetting<K extends string = string> extends Common<K> {
  readonly type: "string";
  readonly pattern?: RegExp;
  readonly shape?: string;
  readonly default?: string;
}

/** A file or directory name, made absolute; "" only with `allowEmpty` (and then kept as ""). */
export interface PathSetting<K extends string = string> extends Common<K> {
  readonly type: "path";
  readonly allowEmpty?: boolean;
  readonly default?: string;
}

/** `true` or `false` as a value (`--mesh-admin true`, `FANRECALL_MESH_ADMIN=false`, JSON booleans). */
export interface BoolSetting<K extends string = string> extends Common<K> {
  readonly type: "bool";
  readonly default?: boolean;
}

/** A switch that takes no value (`--json`); false unless given. */
export interface FlagSetting<K extends string = string> extends Common<K> {
  readonly type: "flag";
}

/** Repeatable flag; the environment variable holds the items joined by `separator`; a JSON array in a file. */
export interface ListSetting<K extends string = string> extends Common<K> {
  readonly type: "list";
  readonly separator: string;
  /** Items are paths, made absolute. */
  readonly paths?: boolean;
}

/** One of a closed set of words. */
export interface EnumSetting<K extends string = string, C extends string = string> extends Common<K> {
  readonly type: "enum";
  readonly choices: readonly C[];
  readonly default?: C;
}

/** `UID` or `UID:GID` (the gid is the uid when absent). */
export interface UserSetting<K extends string = string> extends Common<K> {
  readonly type: "user";
  readonly check?: (value: { uid: number; gid: number }) => string | null;
}

/** A span of time, `0`, `500ms`, `90s`, `15m`, `1h` or `30d`, loaded as milliseconds. */
export interface DurationSetting<K extends string = string> extends Common<K> {
  readonly type: "duration";
  /** Bounds in milliseconds. */
  readonly min: number;
  readonly max: number;
  /** In milliseconds; --help shows `defaultText` (say "30d"). */
  readonly default?: number;
}

/** `HOST:PORT` (`[::1]:9443` for IPv6; port 0 picks a free one); "" means none. */
export interface AddressSetting<K extends string = string> extends Common<K> {
  readonly type: "address";
}

export type Setting =
  | IntSetting
  | NumberSetting
  | StringSetting
  | PathSetting
  | BoolSetting
  | FlagSetting
  | ListSetting
  | EnumSetting
  | UserSetting
  | AddressSetting
  | DurationSetting;

export type SettingsTable = readonly Setting[];

/** How a command takes its settings, and what its --help says around them. */
export interface CommandSpec<T extends SettingsTable = SettingsTable> {
  /** After "Usage: ": `fanrecall listener --watch DIR [--watch DIR ...] [options]`. */
  readonly usage: string;
  /** Paragraphs between the usage line and the options. */
  readonly about?: string;
  readonly settings: T;
  /** Take --config FILE (FANRECALL_CONFIG): a JSON object keyed by each setting's `key`. */
  readonly configFile?: boolean;
  /** Take positional arguments, at least `min` of them, named `name` in errors. */
  readonly positionals?: { readonly name: string; readonly min: number };
  /** Text after the options. */
  readonly footer?: string;
}

type ValueOf<S> = S extends { type: "int" | "number" | "duration" }
  ? number
  : S extends { type: "bool" | "flag" }
    ? boolean
    : S extends { type: "list" }
      ? string[]
      : S extends { type: "enum"; choices: readonly (infer C)[] }
        ? C
        : S extends { type: "user" }
          ? { uid: number; gid: number }
          : S extends { type: "address" }
            ? { host: string; port: number }
            : string;

/** Settings that always have a value once loaded: defaulted, required, switches and lists. */
type Always = { default: unknown } | { required: true } | { type: "flag" | "list" };

/** The object a table loads into: one field per setting, `undefined` where none was given. */
export type Settings<T extends SettingsTable> = {
  readonly [S in T[number] as S["key"]]: S extends Always ? ValueOf<S> : ValueOf<S> | undefined;
} & { readonly positionals: readonly string[] };
