// accessor: what both halves know about the process behind a held access, beyond the wire
// message (Accessor in recall.proto): the Kubernetes pod uid its cgroup path names, and the
// closed set of labels a recall rule gives it (the actions, the shape and number of rule
// names: metric label values and audit fields, so they must stay bounded).
//
// Owns: the pod-from-cgroup derivation and the rule label set. Must not own: reading /proc
// (the listener does, while the process waits), matching rules (listener/recall-rules.ts) or
// rendering metrics. Imports nothing. Holds no fds.

/**
 * The pod uid in a cgroup path, from either cgroup driver: systemd
 * (`kubepods-burstable-pod1234_abcd.slice`, underscores for dashes) or cgroupfs
 * (`/kubepods/burstable/pod1234-abcd/...`). Null when the path names no pod.
 */
export function podUidFromCgroup(cgroup: string): string | null {
  const m = /kubepods(?:[-/][a-z]+)?[-/]pod([0-9a-fA-F_-]{36})(?:\.slice)?(?:\/|$)/.exec(cgroup);
  return m ? m[1].replace(/_/g, "-").toLowerCase() : null;
}

/** What a recall rule does with an access it matches. */
export const RULE_ACTIONS = ["allow", "deny", "low"] as const;
export type RuleAction = (typeof RULE_ACTIONS)[number];

/** The implicit last rule: everything no configured rule matched is allowed under this name. */
export const DEFAULT_RULE = "default";

/** At most this many rules in a rules file (so at most this many plus one rule labels). */
export const MAX_RULES = 256;

/** A rule name: a metric label value and an audit field. */
export const RULE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function isRuleAction(s: string): s is RuleAction {
  return (RULE_ACTIONS as readonly string[]).includes(s);
}
