// policy-metrics: the figures of `fanrecall policy`, the root space manager, which opens no
// port: after each pass it reports what it did since its last report (ReportPolicyStats),
// and these add it up for /metrics. Every report is hostile input: actions outside the closed
// set, counts that are not whole numbers below 2^53, and dirs that are not normalized
// absolute paths of printable characters are dropped; at most MAX_POLICY_DIRS dirs ever
// become label values (the first ones reported), so a policy process cannot grow the series
// without bound.
//
// Owns: the policy's totals and the last use per dir, and their rendering. Must not own: the
// RPC (rpc-handlers.ts) or the rest of the exposition (metrics.ts). Holds no fds.
import { posix } from "node:path";

/** The `action` label of the policy's counters. */
export const POLICY_ACTIONS = ["archive", "release"] as const;
export type PolicyActionName = (typeof POLICY_ACTIONS)[number];

/** The most dirs that become `dir` label values. */
export const MAX_POLICY_DIRS = 64;
const MAX_DIR_CHARS = 1024;

/** One report, as the RPC carries it (counts still to be checked). */
export interface PolicyReport {
  readonly passes: number;
  readonly lastPassSeconds: number;
  readonly actions: ReadonlyArray<{ action: string; count: number; bytes: number }>;
  readonly filesystems: ReadonlyArray<{ dir: string; usedRatio: number }>;
}

type Family = (name: string, type: string, help: string) => void;

/** Whether `dir` may become a label value: a normalized absolute path of printable characters. */
export function isPolicyDir(dir: string): boolean {
  return (
    dir.length <= MAX_DIR_CHARS &&
    dir.startsWith("/") &&
    posix.normalize(dir) === dir &&
    (dir === "/" || !dir.endsWith("/")) &&
    // eslint-disable-next-line no-control-regex
    !/[\u0000-\u001f\u007f-\u009f]/.test(dir)
  );
}

function isCount(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function isPolicyAction(a: string): a is PolicyActionName {
  return (POLICY_ACTIONS as readonly string[]).includes(a);
}

export class PolicyMetrics {
  private readonly actions = new Map<PolicyActionName, { count: number; bytes: number }>(
    POLICY_ACTIONS.map((a) => [a, { count: 0, bytes: 0 }]),
  );
  private passes = 0;
  /** Seconds the latest reported pass took; null before the first. */
  private lastPassSeconds: number | null = null;
  private readonly usedRatio = new Map<string, number>();

  /** Adds one report to the totals; what fails the checks is dropped. */
  record(r: PolicyReport): void {
    if (isCount(r.passes)) this.passes += r.passes;
    if (r.passes > 0 && Number.isFinite(r.lastPassSeconds) && r.lastPassSeconds >= 0)
      this.lastPassSeconds = r.lastPassSeconds;
    for (const a of r.actions) {
      const row = isPolicyAction(a.action) ? this.actions.get(a.action) : undefined;
      if (row === undefined || !isCount(a.count) || !isCount(a.bytes)) continue;
      row.count += a.count;
      row.bytes += a.bytes;
    }
    for (const f of r.filesystems.slice(0, MAX_POLICY_DIRS)) {
      if (!isPolicyDir(f.dir) || !Number.isFinite(f.usedRatio) || f.usedRatio < 0 || f.usedRatio > 1) continue;
      if (this.usedRatio.has(f.dir) || this.usedRatio.size < MAX_POLICY_DIRS) this.usedRatio.set(f.dir, f.usedRatio);
    }
  }

  render(out: string[], family: Family, labels: (pairs: Record<string, string>) => string): void {
    family("fanrecall_policy_actions_total", "counter", "Files fanrecall policy archived or released, by action.");
    for (const [action, row] of this.actions)
      out.push(`fanrecall_policy_actions_total${labels({ action })} ${row.count}`);
    family("fanrecall_policy_bytes_total", "counter", "Bytes of the files fanrecall policy archived or released.");
    for (const [action, row] of this.actions)
      out.push(`fanrecall_policy_bytes_total${labels({ action })} ${row.bytes}`);
    family("fanrecall_policy_passes_total", "counter", "Passes fanrecall policy finished.");
    out.push(`fanrecall_policy_passes_total ${this.passes}`);
    if (this.lastPassSeconds !== null) {
      family("fanrecall_policy_pass_duration_seconds", "gauge", "Time the latest pass of fanrecall policy took.");
      out.push(`fanrecall_policy_pass_duration_seconds ${this.lastPassSeconds}`);
    }
    if (this.usedRatio.size > 0) {
      family(
        "fanrecall_filesystem_used_ratio",
        "gauge",
        "Use of each policy DIR's filesystem after the latest pass (used / (used + available)).",
      );
      for (const [dir, ratio] of this.usedRatio) out.push(`fanrecall_filesystem_used_ratio${labels({ dir })} ${ratio}`);
    }
  }
}
