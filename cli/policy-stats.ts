// policy-stats: what `fanrecall policy` did, sent to the recall service after each pass
// (ReportPolicyStats), which renders it on /metrics: the policy opens no port of its own.
// Best effort: a report that fails never fails a pass; its figures stay and go with the next
// report, and the failure is written once (again only after a report got through). The
// reply is empty and read with a small receive limit.
//
// Owns: the figures not yet reported and one gRPC channel to the recall service's unix socket
// (opened at the first report, closed by close()). Must not own: the pass (policy-pass.ts) or its output
// (policy-command.ts). Holds no fds.
import { recallGrpcSocketPath } from "../ipc/run-dir.js";
import { RecallService, createClient } from "../proto/index.js";
import type { PassSummary, PolicyAction } from "./policy-pass.js";

const REPORT_MS = 2_000;
/** The most dirs one report names (the recall service keeps no more as labels either). */
const MAX_DIRS = 64;

type ActionName = PolicyAction["action"];

export class PolicyStats {
  private handle: ReturnType<typeof connect> | null = null;
  private passes = 0;
  private lastPassSeconds = 0;
  private readonly actions = new Map<ActionName, { count: number; bytes: number }>();
  private readonly usedRatio = new Map<string, number>();
  private failing = false;

  /** `runDir` is asked at the first report (a failure to find it is a failed report). */
  constructor(
    private readonly runDir: () => string,
    private readonly warn: (line: string) => void,
  ) {}

  /** One action the listener did (a refused one is not counted). */
  action(a: PolicyAction): void {
    if (a.error !== null) return;
    const row = this.actions.get(a.action) ?? { count: 0, bytes: 0 };
    row.count++;
    row.bytes += a.size;
    this.actions.set(a.action, row);
  }

  /** One DIR's pass ended with its filesystem at `usedPctAfter` percent. */
  dirDone(s: PassSummary): void {
    if (this.usedRatio.has(s.dir) || this.usedRatio.size < MAX_DIRS)
      this.usedRatio.set(s.dir, Math.min(1, Math.max(0, s.usedPctAfter / 100)));
  }

  /** A pass over every DIR took `seconds`: reports it, with everything not reported yet. */
  async passDone(seconds: number): Promise<void> {
    this.passes++;
    this.lastPassSeconds = seconds;
    try {
      this.handle ??= connect(this.runDir());
      await this.handle.client.reportPolicyStats(
        {
          policyPid: process.pid,
          passes: BigInt(this.passes),
          lastPassSeconds: this.lastPassSeconds,
          actions: [...this.actions].map(([action, r]) => ({ action, count: BigInt(r.count), bytes: BigInt(r.bytes) })),
          filesystems: [...this.usedRatio].map(([dir, usedRatio]) => ({ dir, usedRatio })),
        },
        { timeoutMs: REPORT_MS },
      );
    } catch (err: unknown) {
      if (!this.failing) this.warn(`cannot report to the recall service (metrics): ${errorText(err)}`);
      this.failing = true;
      return;
    }
    this.failing = false;
    this.passes = 0;
    this.actions.clear();
  }

  close(): void {
    this.handle?.close();
    this.handle = null;
  }
}

function connect(runDir: string) {
  return createClient(RecallService, `unix://${recallGrpcSocketPath(runDir)}`, undefined, {
    "grpc.max_receive_message_length": 4096,
  });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
