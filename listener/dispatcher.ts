// dispatcher: decides every fanotify event. It answers at once where it can: our own
// access (self), a file that is not a stub (resident: allowed and ignore-marked), a stub state
// that does not decode (stub-corrupt), shutdown, and overload (more event fds held than
// maxHeld, or a recall the recall budget does not admit: fair share per caller), and a caller
// a recall rule denies (recall-rules.ts: the rule's errno, nothing fetched; a `low` caller's
// new recall first waits its turn, low-recalls.ts). Every other
// event goes through the per-inode queue to the recall runner (recall-runner.ts), which
// recalls and checks the bytes, and the kernel gets the reason's verdict back. Whatever goes
// wrong with one event is answered for that event (EIO) and logged; it never stops the
// others. It counts events and reasons for status and metrics.
//
// Owns: every event fd from the moment onEvent receives it until it is answered and closed
// (exactly once, in `finish`); the inode queue, the recall budget, the low turns and the rule
// counts. Must not own: the group
// (fanotify-source), the recall itself (recall-runner), the wire (fd-channel, recall-client)
// or S3 anything. Never opens a watched file by path.
import type { Logger } from "pino";
import * as native from "../native/index.js";
import { podUidFromCgroup } from "../proto/accessor.js";
import type { RuleAction } from "../proto/accessor.js";
import type { FanEvent } from "../native/index.js";
import { describeAccessor } from "./classify-access.js";
import type { AccessorInfo } from "./classify-access.js";
import { FAILURE_POLICY } from "./failure-policy.js";
import type { ListenerReason, Outcome } from "./failure-policy.js";
import type { FanotifySource, WatchMode } from "./fanotify-source.js";
import { InodeQueue, inodeKey } from "./inode-queue.js";
import { LowRecalls } from "./low-recalls.js";
import { RecallBudget } from "./recall-budget.js";
import { DEFAULT_DECISION, decideRule } from "./recall-rules.js";
import type { RecallRule } from "./recall-rules.js";
import type { RecallRunner } from "./recall-runner.js";
import { needsRecall } from "./stub-state.js";
import type { StubStore } from "./stub-store.js";

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

export interface DispatcherOptions {
  readonly source: Pick<FanotifySource, "respond" | "ignore">;
  readonly runner: Pick<RecallRunner, "forEvent" | "stop" | "settle">;
  readonly stubs: Pick<StubStore, "read">;
  readonly log: Logger;
  /** Distinct files recalled at once. */
  readonly maxRecalls: number;
  /** The part of maxRecalls one uid or cgroup may hold (0 < share <= 1). */
  readonly callerShare: number;
  /** Event fds held at once (readers waiting); beyond it new events get EAGAIN. */
  readonly maxHeld: number;
  readonly modeOf: (dev: number) => WatchMode;
  /** Who may recall (--recall-rules); empty: everyone, and /proc is read only for the budget. */
  readonly rules: readonly RecallRule[];
  /** How long a `low` caller's access waits for its turn before EAGAIN (the recall deadline). */
  readonly lowWaitMs: number;
  /** Reads who is behind an event (tests give their own). */
  readonly describe?: (pid: number) => AccessorInfo;
}

/** One access to a stub, decided to be recalled. */
interface Access {
  readonly ev: FanEvent;
  readonly key: string;
  readonly mode: WatchMode;
  readonly accessor: () => AccessorInfo;
}

export class Dispatcher {
  private readonly queue = new InodeQueue();
  private readonly budget: RecallBudget;
  private readonly low: LowRecalls;
  /** Event fds held, and whether the kernel has been answered already (by drain). */
  private readonly pending = new Map<number, { answered: boolean }>();
  private closing = false;
  /** Counters by reason, for status and metrics. */
  readonly counts = new Map<ListenerReason, number>();
  /** Decisions per recall rule (and the default), for metrics; empty without rules. */
  private readonly ruleCounts = new Map<string, { action: RuleAction; count: number }>();
  /** Events read since start (for the listener's metrics). */
  eventsTotal = 0;

  constructor(private readonly opts: DispatcherOptions) {
    this.budget = new RecallBudget(opts.maxRecalls, opts.callerShare);
    this.low = new LowRecalls(() => this.budget.size);
    if (opts.rules.length > 0) {
      for (const r of [...opts.rules, DEFAULT_DECISION]) this.ruleCounts.set(r.name, { action: r.action, count: 0 });
    }
  }

  /** How many accesses each rule decided (every configured rule and "default", zeros included). */
  ruleDecisions(): Array<{ rule: string; action: RuleAction; count: number }> {
    return [...this.ruleCounts].map(([rule, { action, count }]) => ({ rule, action, count }));
  }

  /**
   * Runs `work` for inode `key` alone: after every access queued before it, before any after,
   * and after the inode's read-ahead stream (if one runs) has ended.
   */
  exclusive<T>(key: string, work: () => Promise<T> | T): Promise<T> {
    return this.queue.run(key, async () => {
      await this.opts.runner.settle(key);
      return work();
    });
  }

  onEvent(ev: FanEvent): void {
    this.eventsTotal++;
    if (ev.fd < 0) {
      // FAN_REPORT_FD_ERROR: the kernel could not open an fd for this event (-errno) and has
      // denied that access itself; nothing is left to answer.
      this.count("no-fd");
      this.opts.log.warn({ errno: -ev.fd, reason: "no-fd" }, "event without fd (denied by the kernel)");
      return;
    }
    this.pending.set(ev.fd, { answered: false });
    try {
      this.decide(ev);
    } catch (err: unknown) {
      this.opts.log.error({ err: String(err), reason: "internal-error" }, "event handling failed");
      if (this.pending.has(ev.fd)) this.finish(ev.fd, "internal-error");
    }
  }

  private decide(ev: FanEvent): void {
    if (ev.pid === process.pid) return this.finish(ev.fd, "self");
    const st = native.fstat(ev.fd);
    const mode = this.opts.modeOf(st.dev);
    if ((st.mode & S_IFMT) !== S_IFREG) return this.finishIgnored(ev.fd, mode, "resident");
    const stub = this.opts.stubs.read(ev.fd);
    if (stub === "corrupt") return this.finish(ev.fd, "stub-corrupt");
    if (stub === null || !needsRecall(stub.state)) return this.finishIgnored(ev.fd, mode, "resident");
    if (this.closing) return this.finish(ev.fd, "shutdown");
    if (this.pending.size > this.opts.maxHeld) return this.finish(ev.fd, "overloaded");
    const key = inodeKey(st);
    // Read from /proc at most once per event: for the rules, the budget and the audit record.
    let who: AccessorInfo | undefined;
    const described = () => (who ??= (this.opts.describe ?? describeAccessor)(ev.pid));
    const rule = this.ruleFor(ev.pid, described);
    const accessor = rule === null ? described : () => ({ ...described(), rule: rule.name });
    const access: Access = { ev, key, mode, accessor };
    if (rule?.action === "deny") return this.denyByRule(ev.fd, rule, described());
    if (rule?.action === "low" && !this.budget.has(key)) return this.waitTurn(access, rule);
    this.admitAndRun(access);
  }

  /** The rule that decides this access (counted), or null without rules. */
  private ruleFor(pid: number, who: () => AccessorInfo): RecallRule | null {
    if (this.opts.rules.length === 0) return null;
    const rule = pid > 0 ? decideRule(this.opts.rules, who()) : DEFAULT_DECISION;
    const row = this.ruleCounts.get(rule.name);
    if (row) row.count++;
    return rule;
  }

  /** A rule denies the caller: answered at once with the rule's errno; nothing is fetched. */
  private denyByRule(fd: number, rule: RecallRule & { action: "deny" }, who: AccessorInfo): void {
    this.finish(fd, "denied-by-rule", { verdict: "deny", errno: rule.errno });
    const { pid, uid, command, cgroup } = who;
    const pod = podUidFromCgroup(cgroup);
    const fields = { rule: rule.name, action: rule.action, errno: rule.errno, pid, uid, command, cgroup, pod };
    this.opts.log.info({ audit: "recall-rule", ...fields, reason: "denied-by-rule" }, "recall denied by rule");
  }

  /** A `low` caller's new recall waits for its turn (low-recalls.ts), then is admitted as any other. */
  private waitTurn(a: Access, rule: RecallRule & { action: "low" }): void {
    this.low.wait(rule.name, { max: rule.max, waitMs: this.opts.lowWaitMs }, (go) => {
      try {
        if (!go) {
          this.opts.log.warn({ pid: a.ev.pid, rule: rule.name, reason: "overloaded" }, "no turn for a low recall");
          return this.finish(a.ev.fd, this.closing ? "shutdown" : "overloaded");
        }
        // A recall of the file started meanwhile: join it, and give the turn back.
        const joined = this.budget.has(a.key);
        if (joined) this.low.done(rule.name);
        this.admitAndRun(a, joined ? undefined : () => this.low.done(rule.name));
      } catch (err: unknown) {
        this.opts.log.error({ err: String(err), reason: "internal-error" }, "low recall failed");
        if (this.pending.has(a.ev.fd)) this.finish(a.ev.fd, "internal-error");
      }
    });
  }

  /** Admits the access in the recall budget and queues its work; `after` runs when it is done. */
  private admitAndRun(a: Access, after?: () => void): void {
    const { ev, key, mode, accessor } = a;
    const admission = this.budget.admit(key, accessor);
    if (admission === "budget-full" || admission === "caller-over-share") {
      this.opts.log.warn({ pid: ev.pid, admission, reason: "overloaded" }, "recall not admitted");
      after?.();
      return this.finish(ev.fd, "overloaded");
    }
    void this.queue
      .run(key, () => this.opts.runner.forEvent(ev, mode, accessor))
      .then(
        (reason) => this.finish(ev.fd, reason),
        (err: unknown) => {
          this.opts.log.error({ err: String(err), reason: "internal-error" }, "recall crashed");
          this.finish(ev.fd, "internal-error");
        },
      )
      .finally(() => {
        this.budget.done(key);
        after?.();
        this.low.pump();
      });
  }

  private finishIgnored(fd: number, mode: WatchMode, reason: ListenerReason): void {
    this.opts.source.ignore(fd, mode);
    this.finish(fd, reason);
  }

  /**
   * Answers the kernel for one event fd exactly once, then closes it. Reply first, log second.
   * The reason's outcome is the failure table's, except a rule's own errno (denied-by-rule).
   */
  private finish(fd: number, reason: ListenerReason, outcome: Outcome = FAILURE_POLICY[reason]): void {
    const entry = this.pending.get(fd);
    if (!entry) {
      this.opts.log.error({ fd, reason }, "event answered twice");
      return;
    }
    this.pending.delete(fd);
    if (!entry.answered) this.answer(fd, reason, outcome);
    try {
      native.close(fd);
    } catch (err: unknown) {
      this.opts.log.error({ fd, err: String(err) }, "closing an event fd failed");
    }
  }

  private count(reason: ListenerReason): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
  }

  private answer(fd: number, reason: ListenerReason, outcome: Outcome = FAILURE_POLICY[reason]): void {
    try {
      this.opts.source.respond(fd, outcome.verdict, outcome.errno);
    } catch (err: unknown) {
      this.opts.log.error({ err: String(err), reason }, "response write failed");
    }
    this.count(reason);
    // A rule's denial has its own audit line (denyByRule).
    if (outcome.verdict === "deny" && reason !== "denied-by-rule")
      this.opts.log.warn({ reason, errno: outcome.errno }, "access denied");
  }

  /**
   * Shutdown: every event not yet answered is answered now with the shutdown verdict. The fds
   * stay open until their work finishes, so no fd number is reused under a running recall.
   */
  drain(): number {
    this.closing = true;
    this.opts.runner.stop();
    let n = 0;
    for (const [fd, entry] of this.pending) {
      if (entry.answered) continue;
      entry.answered = true;
      this.answer(fd, "shutdown");
      n++;
    }
    // Low accesses still waiting for a turn: answered above, their fds closed now.
    this.low.stop();
    return n;
  }

  /** Events held right now (read, not yet answered). */
  get held(): number {
    let n = 0;
    for (const entry of this.pending.values()) if (!entry.answered) n++;
    return n;
  }

  get queued(): number {
    return this.queue.size;
  }

  /** Distinct files being recalled now. */
  get recalling(): number {
    return this.budget.size;
  }
}
