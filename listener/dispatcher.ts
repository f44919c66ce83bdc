// dispatcher: decides every fanotify event. It answers at once where it can: our own
// access (self), a file that is not a stub (resident: allowed and ignore-marked), a stub state
// that does not decode (stub-corrupt), shutdown, and overload (more event fds held than
// maxHeld, or a recall the recall budget does not admit: fair share per caller). Every other
// event goes through the per-inode queue to the recall runner (recall-runner.ts), which
// recalls and checks the bytes, and the kernel gets the reason's verdict back. Whatever goes
// wrong with one event is answered for that event (EIO) and logged; it never stops the
// others. It counts events and reasons for status and metrics.
//
// Owns: every event fd from the moment onEvent receives it until it is answered and closed
// (exactly once, in `finish`); the inode queue and the recall budget. Must not own: the group
// (fanotify-source), the recall itself (recall-runner), the wire (fd-channel, recall-client)
// or S3 anything. Never opens a watched file by path.
import type { Logger } from "pino";
import * as native from "../native/index.js";
import type { FanEvent } from "../native/index.js";
import { describeAccessor } from "./classify-access.js";
import type { AccessorInfo } from "./classify-access.js";
import { FAILURE_POLICY } from "./failure-policy.js";
import type { ListenerReason } from "./failure-policy.js";
import type { FanotifySource, WatchMode } from "./fanotify-source.js";
import { InodeQueue, inodeKey } from "./inode-queue.js";
import { RecallBudget } from "./recall-budget.js";
import type { RecallRunner } from "./recall-runner.js";
import { needsRecall } from "./stub-state.js";
import type { StubStore } from "./stub-store.js";

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

export interface DispatcherOptions {
  readonly source: Pick<FanotifySource, "respond" | "ignore">;
  readonly runner: Pick<RecallRunner, "forEvent" | "stop">;
  readonly stubs: Pick<StubStore, "read">;
  readonly log: Logger;
  /** Distinct files recalled at once. */
  readonly maxRecalls: number;
  /** The part of maxRecalls one uid or cgroup may hold (0 < share <= 1). */
  readonly callerShare: number;
  /** Event fds held at once (readers waiting); beyond it new events get EAGAIN. */
  readonly maxHeld: number;
  readonly modeOf: (dev: number) => WatchMode;
}

export class Dispatcher {
  private readonly queue = new InodeQueue();
  private readonly budget: RecallBudget;
  /** Event fds held, and whether the kernel has been answered already (by drain). */
  private readonly pending = new Map<number, { answered: boolean }>();
  private closing = false;
  /** Counters by reason, for status and metrics. */
  readonly counts = new Map<ListenerReason, number>();
  /** Events read since start (for the listener's metrics). */
  eventsTotal = 0;

  constructor(private readonly opts: DispatcherOptions) {
    this.budget = new RecallBudget(opts.maxRecalls, opts.callerShare);
  }

  /** Runs `work` for inode `key` alone: after every access queued before it, before any after. */
  exclusive<T>(key: string, work: () => Promise<T> | T): Promise<T> {
    return this.queue.run(key, async () => work());
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
    // Read from /proc at most once per event: for the budget and for the audit record.
    let who: AccessorInfo | undefined;
    const accessor = () => (who ??= describeAccessor(ev.pid));
    const admission = this.budget.admit(key, accessor);
    if (admission === "budget-full" || admission === "caller-over-share") {
      this.opts.log.warn({ pid: ev.pid, admission, reason: "overloaded" }, "recall not admitted");
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
      .finally(() => this.budget.done(key));
  }

  private finishIgnored(fd: number, mode: WatchMode, reason: ListenerReason): void {
    this.opts.source.ignore(fd, mode);
    this.finish(fd, reason);
  }

  /** Answers the kernel for one event fd exactly once, then closes it. Reply first, log second. */
  private finish(fd: number, reason: ListenerReason): void {
    const entry = this.pending.get(fd);
    if (!entry) {
      this.opts.log.error({ fd, reason }, "event answered twice");
      return;
    }
    this.pending.delete(fd);
    if (!entry.answered) this.answer(fd, reason);
    try {
      native.close(fd);
    } catch (err: unknown) {
      this.opts.log.error({ fd, err: String(err) }, "closing an event fd failed");
    }
  }

  private count(reason: ListenerReason): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
  }

  private answer(fd: number, reason: ListenerReason): void {
    const outcome = FAILURE_POLICY[reason];
    try {
      this.opts.source.respond(fd, outcome.verdict, outcome.errno);
    } catch (err: unknown) {
      this.opts.log.error({ err: String(err), reason }, "response write failed");
    }
    this.count(reason);
    if (outcome.verdict === "deny") this.opts.log.warn({ reason, errno: outcome.errno }, "access denied");
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
