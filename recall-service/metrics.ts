// metrics: the recall service's Prometheus metrics, its own and the listener's (the listener
// opens no port; it reports its counters over gRPC, see ReportListenerStats), rendered in the
// Prometheus text exposition format (version 0.0.4).
//
// Owns: the metric values and their rendering. Label values are closed sets (verdict, reason
// names of proto/reasons.ts, gRPC code names, the listener's configured recall rule names,
// bounded by proto/accessor.ts), never paths or user input. Counters whose labels
// are known in advance start at 0 (every reason with its table verdict, every admin op with
// OK, the listener's counters before its first report): a series that first appears at N
// hides those N from rate() and increase(), so the first recall, or a rare failure, would
// never show on a dashboard. The policy's figures are policy-metrics.ts's. Must not own: the HTTP server (metrics-server.ts) or deciding
// what a recall's outcome was. Holds no fds.
import { DEFAULT_RULE, MAX_RULES, RULE_NAME, isRuleAction } from "../proto/accessor.js";
import type { RuleAction } from "../proto/accessor.js";
import { REASON_NAMES, accessOutcome, isReasonName } from "../proto/index.js";
import type { ReasonName } from "../proto/index.js";
import { PolicyMetrics } from "./policy-metrics.js";

/** The mesh admin API's operations (the `op` label). */
export const ADMIN_OPS = ["status", "restore", "archive"] as const;

/** Upper bounds (seconds) of the recall latency histogram. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

export interface ListenerSnapshot {
  readonly pid: number;
  readonly eventsTotal: number;
  readonly ignoreMarkedFiles: number;
  readonly queueDepth: number;
  readonly verdicts: ReadonlyArray<ListenerVerdictCount>;
  /** Decisions per recall rule (listener --recall-rules). */
  readonly rules: ReadonlyArray<ListenerRuleCount>;
  /** Date.now() when it arrived. */
  readonly receivedMs: number;
}

export interface ListenerVerdictCount {
  readonly verdict: "allow" | "deny";
  readonly reason: ReasonName;
  readonly count: number;
}

/**
 * The listener's reported counts as label values of the closed set: a name outside it (a
 * listener of another version) counts as protocol-error, and each verdict is the table's.
 */
export function listenerVerdicts(reported: ReadonlyArray<{ reason: string; count: number }>): ListenerVerdictCount[] {
  const counts = new Map<ReasonName, number>();
  for (const r of reported) {
    const reason = isReasonName(r.reason) ? r.reason : "protocol-error";
    counts.set(reason, (counts.get(reason) ?? 0) + r.count);
  }
  return [...counts].map(([reason, count]) => ({ verdict: accessOutcome(reason).verdict, reason, count }));
}

export interface ListenerRuleCount {
  readonly rule: string;
  readonly action: RuleAction;
  readonly count: number;
}

/**
 * The listener's reported rule counts, bounded: rule names of the rule-name shape, known
 * actions, each rule once, at most MAX_RULES plus the default; anything else is dropped.
 */
export function listenerRuleCounts(
  reported: ReadonlyArray<{ rule: string; action: string; count: number }>,
): ListenerRuleCount[] {
  const rows = new Map<string, ListenerRuleCount>();
  for (const r of reported) {
    if (rows.size > MAX_RULES || rows.has(r.rule)) continue;
    if (!(RULE_NAME.test(r.rule) || r.rule === DEFAULT_RULE) || !isRuleAction(r.action)) continue;
    rows.set(r.rule, { rule: r.rule, action: r.action, count: r.count });
  }
  return [...rows.values()];
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function labels(pairs: Record<string, string>): string {
  const inner = Object.entries(pairs)
    .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
    .join(",");
  return inner ? `{${inner}}` : "";
}

export class RecallMetrics {
  private readonly recalls = new Map<string, { verdict: string; reason: ReasonName; n: number }>();
  private readonly admin = new Map<string, { op: string; code: string; n: number }>();
  private readonly bucketCounts: number[] = LATENCY_BUCKETS.map(() => 0);
  private latencyCount = 0;
  private latencySum = 0;
  bytesWritten = 0;
  inFlight = 0;
  storeUp = 1;
  /** The latest report of the listener, or null before the first one. */
  listener: ListenerSnapshot | null = null;
  /** What `fanrecall policy` reported (ReportPolicyStats). */
  readonly policy = new PolicyMetrics();

  constructor(private readonly storeBytesFetched: () => number) {
    for (const reason of REASON_NAMES) {
      const verdict = accessOutcome(reason).verdict;
      this.recalls.set(`${verdict}\0${reason}`, { verdict, reason, n: 0 });
    }
    for (const op of ADMIN_OPS) this.admin.set(`${op}\0OK`, { op, code: "OK", n: 0 });
  }

  /** One finished Recall RPC. */
  recordRecall(verdict: "allow" | "deny", reason: ReasonName, seconds: number, bytesWritten: number): void {
    const key = `${verdict}\0${reason}`;
    const row = this.recalls.get(key) ?? { verdict, reason, n: 0 };
    row.n++;
    this.recalls.set(key, row);
    this.bytesWritten += bytesWritten;
    this.latencyCount++;
    this.latencySum += seconds;
    LATENCY_BUCKETS.forEach((le, i) => {
      if (seconds <= le) this.bucketCounts[i]++;
    });
  }

  /** One finished mesh admin call: op is status|restore|archive, code the gRPC status name (OK, NOT_FOUND, ...). */
  recordAdmin(op: string, code: string): void {
    const key = `${op}\0${code}`;
    const row = this.admin.get(key) ?? { op, code, n: 0 };
    row.n++;
    this.admin.set(key, row);
  }

  /** True while a listener has reported within `maxAgeMs`. */
  listenerConnected(maxAgeMs: number): boolean {
    return this.listener !== null && Date.now() - this.listener.receivedMs <= maxAgeMs;
  }

  render(): string {
    const out: string[] = [];
    const family = (name: string, type: string, help: string) =>
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    family("fanrecall_recalls_total", "counter", "Recall RPCs finished, by verdict and reason.");
    for (const r of this.recalls.values())
      out.push(`fanrecall_recalls_total${labels({ verdict: r.verdict, reason: r.reason })} ${r.n}`);
    family("fanrecall_recall_bytes_written_total", "counter", "Bytes recalled into files.");
    out.push(`fanrecall_recall_bytes_written_total ${this.bytesWritten}`);
    family(
      "fanrecall_store_bytes_fetched_total",
      "counter",
      "Chunk bytes fetched from the object store (manifests not counted).",
    );
    out.push(`fanrecall_store_bytes_fetched_total ${this.storeBytesFetched()}`);
    family("fanrecall_recall_duration_seconds", "histogram", "Time a Recall RPC took.");
    LATENCY_BUCKETS.forEach((le, i) =>
      out.push(`fanrecall_recall_duration_seconds_bucket${labels({ le: String(le) })} ${this.bucketCounts[i]}`),
    );
    out.push(`fanrecall_recall_duration_seconds_bucket${labels({ le: "+Inf" })} ${this.latencyCount}`);
    out.push(`fanrecall_recall_duration_seconds_sum ${this.latencySum}`);
    out.push(`fanrecall_recall_duration_seconds_count ${this.latencyCount}`);
    family("fanrecall_recalls_in_flight", "gauge", "Recall RPCs running now.");
    out.push(`fanrecall_recalls_in_flight ${this.inFlight}`);
    family("fanrecall_store_up", "gauge", "1 when the last object store probe succeeded.");
    out.push(`fanrecall_store_up ${this.storeUp}`);
    family("fanrecall_admin_requests_total", "counter", "Mesh admin API calls finished, by operation and gRPC code.");
    for (const a of this.admin.values())
      out.push(`fanrecall_admin_requests_total${labels({ op: a.op, code: a.code })} ${a.n}`);
    this.renderListener(out, family);
    this.policy.render(out, family, labels);
    return `${out.join("\n")}\n`;
  }

  private renderListener(out: string[], family: (name: string, type: string, help: string) => void): void {
    const l = this.listener;
    family("fanrecall_listener_up", "gauge", "1 while the listener reports its counters (every 5 s).");
    out.push(`fanrecall_listener_up ${this.listenerConnected(15_000) ? 1 : 0}`);
    family("fanrecall_listener_events_total", "counter", "fanotify events the listener read.");
    out.push(`fanrecall_listener_events_total ${l?.eventsTotal ?? 0}`);
    family("fanrecall_listener_ignore_marked_files_total", "counter", "Files the listener ignore-marked.");
    out.push(`fanrecall_listener_ignore_marked_files_total ${l?.ignoreMarkedFiles ?? 0}`);
    family("fanrecall_listener_verdicts_total", "counter", "Events the listener answered, by verdict and reason.");
    const reported = new Map((l?.verdicts ?? []).map((v) => [`${v.verdict}\0${v.reason}`, v]));
    for (const reason of REASON_NAMES) {
      const verdict = accessOutcome(reason).verdict;
      if (!reported.has(`${verdict}\0${reason}`)) reported.set(`${verdict}\0${reason}`, { verdict, reason, count: 0 });
    }
    for (const v of reported.values())
      out.push(`fanrecall_listener_verdicts_total${labels({ verdict: v.verdict, reason: v.reason })} ${v.count}`);
    if (l === null) return;
    if (l.rules.length > 0) {
      family("fanrecall_recall_rule_decisions_total", "counter", "Accesses to stubs each recall rule decided.");
      for (const r of l.rules)
        out.push(`fanrecall_recall_rule_decisions_total${labels({ rule: r.rule, action: r.action })} ${r.count}`);
    }
    family("fanrecall_listener_queue_depth", "gauge", "Events the listener holds now.");
    out.push(`fanrecall_listener_queue_depth ${l.queueDepth}`);
  }
}
