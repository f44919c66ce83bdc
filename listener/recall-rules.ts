// recall-rules: who may recall (--recall-rules FILE). A rules file is a JSON array of rules,
// each `{name, match, action}`: `match` names the accessor by command name (a glob), uid,
// cgroup path (a glob) and/or Kubernetes pod uid, and every key given must match; the
// action is `allow`, `deny` (with `errno`, one fanotify accepts; EPERM by default) or `low`
// (served only while no other recall waits, at most `max` at once, default 1). The first
// rule that matches decides; none matching is the implicit rule "default", which allows.
//
// The file is hostile input (a typo must not become a policy): its size, the number of
// rules and every string are bounded, unknown keys are refused, names are unique label
// values (proto/accessor.ts), and globs are matched by a small linear matcher, never turned
// into a regular expression: `*` is any run of characters (`/` included), `?` one character,
// everything else itself.
//
// Owns: parsing, checking and matching rules. Must not own: reading the file (config.ts),
// reading /proc (classify-access.ts) or acting on a decision (dispatcher.ts). Holds no fds.
import { DEFAULT_RULE, MAX_RULES, RULE_NAME, isRuleAction, podUidFromCgroup } from "../proto/accessor.js";
import type { RuleAction } from "../proto/accessor.js";
import { DENY_ERRNO_BY_NAME } from "../proto/index.js";
import type { DenyErrno } from "../proto/index.js";
import type { AccessorInfo } from "./classify-access.js";

/** The largest rules file read. */
export const MAX_RULES_BYTES = 64 * 1024;
/** The largest `low` limit a rule may set. */
export const MAX_LOW = 1024;

const EPERM = DENY_ERRNO_BY_NAME.EPERM;
const MAX_GLOB = { command: 64, cgroup: 512 } as const;
const MAX_UID = 4294967294;
const POD_UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const RULE_KEYS = ["name", "match", "action", "errno", "max"];
const MATCH_KEYS = ["command", "uid", "cgroup", "pod"];

export interface RuleMatch {
  readonly command?: string;
  readonly uid?: number;
  readonly cgroup?: string;
  readonly pod?: string;
}

interface RuleBase {
  readonly name: string;
  readonly match: RuleMatch;
}

export type RecallRule =
  | (RuleBase & { readonly action: "allow" })
  | (RuleBase & { readonly action: "deny"; readonly errno: DenyErrno })
  | (RuleBase & { readonly action: "low"; readonly max: number });

/** What no rule matched gets. */
export const DEFAULT_DECISION: RecallRule = { name: DEFAULT_RULE, match: {}, action: "allow" };

/** Whether `text` is matched by `glob` (`*` any run, `?` one character); linear, no backtracking blow-up. */
export function globMatch(glob: string, text: string): boolean {
  let g = 0;
  let t = 0;
  let star = -1;
  let resume = 0;
  while (t < text.length) {
    if (g < glob.length && (glob[g] === "?" || (glob[g] !== "*" && glob[g] === text[t]))) {
      g++;
      t++;
    } else if (g < glob.length && glob[g] === "*") {
      star = g++;
      resume = t;
    } else if (star >= 0) {
      g = star + 1;
      t = ++resume;
    } else return false;
  }
  while (g < glob.length && glob[g] === "*") g++;
  return g === glob.length;
}

/** Whether every key of `m` matches `who`. */
export function ruleMatches(m: RuleMatch, who: AccessorInfo): boolean {
  if (m.command !== undefined && !globMatch(m.command, who.command)) return false;
  if (m.uid !== undefined && m.uid !== who.uid) return false;
  if (m.cgroup !== undefined && !globMatch(m.cgroup, who.cgroup)) return false;
  if (m.pod !== undefined && m.pod !== podUidFromCgroup(who.cgroup)) return false;
  return true;
}

/** The first rule matching `who`, or the default (allow). */
export function decideRule(rules: readonly RecallRule[], who: AccessorInfo): RecallRule {
  return rules.find((r) => ruleMatches(r.match, who)) ?? DEFAULT_DECISION;
}

/** Parses a rules file's text; throws one line saying what is wrong and where. */
export function parseRecallRules(text: string): RecallRule[] {
  if (Buffer.byteLength(text) > MAX_RULES_BYTES) throw new Error(`larger than ${MAX_RULES_BYTES} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err: unknown) {
    throw new Error(`not JSON (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
  if (!Array.isArray(parsed)) throw new Error("not a JSON array of rules");
  if (parsed.length > MAX_RULES) throw new Error(`more than ${MAX_RULES} rules`);
  const names = new Set<string>();
  return parsed.map((raw: unknown, i) => {
    const where = `rule ${i + 1}`;
    const rule = parseRule(raw, where);
    if (names.has(rule.name)) throw new Error(`${where}: the name "${rule.name}" is used twice`);
    names.add(rule.name);
    return rule;
  });
}

function parseRule(raw: unknown, where: string): RecallRule {
  const o = knownKeys(raw, RULE_KEYS, where);
  const name = o.name;
  if (typeof name !== "string" || !RULE_NAME.test(name) || name === DEFAULT_RULE)
    throw new Error(`${where}: "name" must be 1-64 letters, digits, '.', '_' or '-' (not "${DEFAULT_RULE}")`);
  const at = `${where} ("${name}")`;
  const match = parseMatch(o.match, at);
  const action = o.action;
  if (typeof action !== "string" || !isRuleAction(action))
    throw new Error(`${at}: "action" must be allow, deny or low`);
  if (o.errno !== undefined && action !== "deny") throw new Error(`${at}: "errno" is for deny only`);
  if (o.max !== undefined && action !== "low") throw new Error(`${at}: "max" is for low only`);
  return withAction(name, match, action, o, at);
}

function withAction(name: string, match: RuleMatch, action: RuleAction, o: Record<string, unknown>, at: string) {
  if (action === "allow") return { name, match, action } as const;
  if (action === "deny") return { name, match, action, errno: parseErrno(o.errno, at) } as const;
  const max = o.max ?? 1;
  if (!Number.isSafeInteger(max) || (max as number) < 1 || (max as number) > MAX_LOW)
    throw new Error(`${at}: "max" must be a whole number from 1 to ${MAX_LOW}`);
  return { name, match, action, max: max as number } as const;
}

function parseErrno(v: unknown, at: string): DenyErrno {
  if (v === undefined) return EPERM;
  const errno = typeof v === "string" && Object.hasOwn(DENY_ERRNO_BY_NAME, v) ? DENY_ERRNO_BY_NAME[v] : undefined;
  if (errno === undefined)
    throw new Error(
      `${at}: "errno" must be one fanotify can answer with: ${Object.keys(DENY_ERRNO_BY_NAME).join(", ")}`,
    );
  return errno;
}

function parseMatch(raw: unknown, at: string): RuleMatch {
  const o = knownKeys(raw, MATCH_KEYS, `${at} "match"`);
  const m: { command?: string; uid?: number; cgroup?: string; pod?: string } = {};
  if (o.command !== undefined) m.command = glob(o.command, "command", at);
  if (o.cgroup !== undefined) m.cgroup = glob(o.cgroup, "cgroup", at);
  if (o.uid !== undefined) {
    if (!Number.isSafeInteger(o.uid) || (o.uid as number) < 0 || (o.uid as number) > MAX_UID)
      throw new Error(`${at}: "uid" must be a whole number from 0 to ${MAX_UID}`);
    m.uid = o.uid as number;
  }
  if (o.pod !== undefined) {
    if (typeof o.pod !== "string" || !POD_UID.test(o.pod.toLowerCase()))
      throw new Error(`${at}: "pod" must be a pod uid (8-4-4-4-12 hex digits)`);
    m.pod = o.pod.toLowerCase();
  }
  return m;
}

function glob(v: unknown, key: keyof typeof MAX_GLOB, at: string): string {
  if (typeof v !== "string" || v === "" || v.length > MAX_GLOB[key] || !isPrintable(v))
    throw new Error(`${at}: "${key}" must be a glob of 1-${MAX_GLOB[key]} printable characters`);
  return v;
}

/** No control characters (they would be a log line's or a label's surprise). */
function isPrintable(v: string): boolean {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return false;
  }
  return true;
}

/** `raw` as an object with none but `keys`. */
function knownKeys(raw: unknown, keys: readonly string[], where: string): Record<string, unknown> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Error(`${where}: not a JSON object`);
  for (const k of Object.keys(raw)) {
    if (!keys.includes(k)) throw new Error(`${where}: unknown key "${k.slice(0, 64)}" (known: ${keys.join(", ")})`);
  }
  return raw as Record<string, unknown>;
}
