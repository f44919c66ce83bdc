// help-text: a command's --help, generated from the same table its settings load from
// (setting-types.ts): the usage line, the command's own paragraphs, then one entry per
// setting giving its flag, environment variable and --config key, what it does, the rule its
// value must follow (the very words an error uses: describe()) and its default.
//
// Owns: text only. Must not import anything but node: builtins and this directory. Holds no fds.
import { describe, formatDuration } from "./settings.js";
import type { CommandSpec, Setting } from "./setting-types.js";

const WIDTH = 96;
const INDENT = "      ";

/** Words of `text` wrapped to WIDTH, each line indented. */
function wrap(text: string, indent: string): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line !== "" && indent.length + line.length + 1 + word.length > WIDTH) {
      lines.push(indent + line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(indent + line);
  return lines;
}

function defaultOf(s: Setting): string | undefined {
  if (s.defaultText !== undefined) return s.defaultText;
  if (s.type === "flag" || s.type === "list" || s.type === "user" || s.type === "address") return undefined;
  if (s.default === undefined) return undefined;
  if (s.type === "duration") return formatDuration(s.default);
  return s.type === "string" && s.default === "" ? '""' : String(s.default);
}

/** The rule shown in help: only for types whose values are not free text. */
function ruleOf(s: Setting): string | undefined {
  if (s.type === "flag" || (s.type === "path" && !s.allowEmpty) || (s.type === "string" && !s.pattern))
    return undefined;
  if (s.type === "list") return s.env ? `repeatable; ${s.env} holds them joined by '${s.separator}'` : "repeatable";
  return describe(s);
}

function entry(s: Setting, configFile: boolean): string[] {
  const flag = `  --${s.name}${s.type === "flag" ? "" : ` ${s.arg ?? defaultArg(s)}`}`;
  const where = [s.env, configFile ? `"${s.key}"` : undefined].filter(Boolean).join("  ");
  const head = where === "" ? flag : `${flag.padEnd(30)} ${where}`;
  const notes = [ruleOf(s), s.required ? "required" : undefined, defaultOf(s) && `default ${defaultOf(s)}`];
  const tail = notes.filter(Boolean).join("; ");
  return [head, ...wrap(tail === "" ? s.help : `${s.help} (${tail})`, INDENT)];
}

function defaultArg(s: Setting): string {
  switch (s.type) {
    case "int":
    case "number":
      return "N";
    case "bool":
      return "true|false";
    case "enum":
      return s.choices.join("|");
    case "user":
      return "UID:GID";
    case "address":
      return "HOST:PORT";
    case "duration":
      return "DURATION";
    case "path":
    case "list":
      return "PATH";
    default:
      return "VALUE";
  }
}

/** The whole --help text of a command. */
export function helpText(spec: CommandSpec): string {
  const out = [`Usage: ${spec.usage}`, ""];
  if (spec.about) out.push(spec.about.trimEnd(), "");
  const configFile = spec.configFile === true;
  out.push(
    configFile ? "Options (flag, environment variable, key in the --config JSON file; that order wins):" : "Options:",
  );
  for (const s of spec.settings) out.push(...entry(s, configFile));
  if (configFile) {
    out.push(`${"  --config FILE".padEnd(30)} FANRECALL_CONFIG`);
    out.push(...wrap("a JSON object of settings, keyed as above (unknown keys are ignored)", INDENT));
  }
  if (spec.footer) out.push("", spec.footer.trimEnd());
  return `${out.join("\n")}\n`;
}
