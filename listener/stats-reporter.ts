// stats-reporter: every REPORT_INTERVAL_MS sends the listener's counters to the recall
// service (ReportListenerStats), which renders them as Prometheus metrics: the listener opens
// no port of its own. The report doubles as the listener's heartbeat for the recall service's
// health. A failed report is dropped; the next one carries the running totals.
//
// Owns: the report timer. Must not own: the counters (dispatcher, fanotify-source keep them)
// or the gRPC channel (recall-client). Holds no fds.
import { FAILURE_POLICY } from "./failure-policy.js";
import type { ListenerReason } from "./failure-policy.js";
import type { RecallClient } from "./recall-client.js";

export const REPORT_INTERVAL_MS = 5_000;

export interface ListenerCounters {
  readonly eventsTotal: number;
  readonly ignoreMarks: number;
  readonly held: number;
  readonly counts: ReadonlyMap<ListenerReason, number>;
  /** Decisions per recall rule, zeros included (empty without rules). */
  readonly rules: ReadonlyArray<{ rule: string; action: string; count: number }>;
}

export class StatsReporter {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly startedMs = Date.now();

  constructor(
    private readonly recall: RecallClient,
    private readonly counters: () => ListenerCounters,
  ) {}

  /** Reports now, then REPORT_INTERVAL_MS after each report ends (never two at once). */
  start(): void {
    this.stopped = false;
    const next = () => {
      if (this.stopped) return;
      this.timer = setTimeout(() => void this.report().finally(next), REPORT_INTERVAL_MS);
      this.timer.unref();
    };
    void this.report().finally(next);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private async report(): Promise<void> {
    const c = this.counters();
    await this.recall.reportListenerStats(
      {
        listenerPid: process.pid,
        startedUnixMs: BigInt(this.startedMs),
        eventsTotal: BigInt(c.eventsTotal),
        ignoreMarkedFiles: BigInt(c.ignoreMarks),
        queueDepth: BigInt(c.held),
        verdicts: [...c.counts].map(([reason, count]) => ({
          verdict: FAILURE_POLICY[reason].verdict,
          reason,
          count: BigInt(count),
        })),
        rules: c.rules.map((r) => ({ rule: r.rule, action: r.action, count: BigInt(r.count) })),
      },
      2_000,
    );
  }
}
