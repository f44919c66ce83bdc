// dispatcher: decides every fanotify event. A file that is not a stub is allowed at once and
// ignore-marked. For a stub, the event goes through the per-inode queue: the access is
// classified (read or modify), the fd is handed to the recall service with the ranges it
// needs, and the kernel gets the verdict back. After a recall the listener restores the
// file's times and updates the stub state; a fully populated file stops being a stub.
//
// Owns: every event fd from the moment onEvent receives it until it is answered and closed
// (exactly once, in `finish`). Must not own: the group (fanotify-source), the wire (fd-channel,
// recall-client) or S3 anything. Never opens a watched file by path.
import type { Logger } from "pino";
import * as native from "../native/index.js";
import type { FanEvent, FdStat } from "../native/index.js";
import { RecallMode, Verdict } from "../proto/index.js";
import { classifyAccess, describeAccessor, tgidOf } from "./classify-access.js";
import { FAILURE_POLICY, fromProtoReason } from "./failure-policy.js";
import type { ListenerReason } from "./failure-policy.js";
import type { FanotifySource, WatchMode } from "./fanotify-source.js";
import type { FdChannel } from "./fd-channel.js";
import { InodeQueue } from "./inode-queue.js";
import type { RecallClient } from "./recall-client.js";
import { STUB_XATTR, StubStateError, decodeStubState, encodeStubState, needsRecall, withState } from "./stub-state.js";
import type { StubState } from "./stub-state.js";

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

/** Work an admin command waits to do inside the event its own process raises. */
export interface Trigger {
  readonly pid: number;
  /** Runs inside the inode queue with the event's (FMODE_NONOTIFY) fd; the event is then allowed. */
  readonly run: (eventFd: number, st: FdStat) => Promise<void>;
}

export interface DispatcherOptions {
  readonly source: FanotifySource;
  readonly channel: FdChannel;
  readonly recall: RecallClient;
  readonly log: Logger;
  readonly recallTimeoutMs: number;
  readonly maxInFlight: number;
  readonly modeOf: (dev: number) => WatchMode;
}

export function inodeKey(st: { dev: number; ino: number }): string {
  return `${st.dev}:${st.ino}`;
}

export class Dispatcher {
  private readonly queue = new InodeQueue();
  /** Admin work waiting for its command's access, by inode: several commands may wait on one file. */
  private readonly triggers = new Map<string, Trigger[]>();
  /** Random start: ids never repeat across listener restarts (the recall service may still hold old ones). */
  private nextRequestId =
    BigInt.asUintN(62, BigInt(Date.now()) << 20n) | BigInt(Math.floor(Math.random() * 2 ** 20)) | 1n;
  private inFlight = 0;
  /** Event fds held, and whether the kernel has been answered already (by drain). */
  private readonly pending = new Map<number, { answered: boolean }>();
  private closing = false;
  /** Counters by reason, for status and metrics. */
  readonly counts = new Map<string, number>();
  /** Events read since start (for the listener's metrics). */
  eventsTotal = 0;

  constructor(private readonly opts: DispatcherOptions) {}

  /** Registers work to run inside the next event of `trigger.pid` on this inode. */
  expectTrigger(key: string, trigger: Trigger): void {
    this.triggers.set(key, [...(this.triggers.get(key) ?? []), trigger]);
  }

  cancelTrigger(key: string, trigger: Trigger): void {
    const rest = (this.triggers.get(key) ?? []).filter((t) => t !== trigger);
    if (rest.length > 0) this.triggers.set(key, rest);
    else this.triggers.delete(key);
  }

  /** The first trigger on `key` waiting for process `tgid`, removed from the table. */
  private takeTrigger(key: string, tgid: number): Trigger | undefined {
    const waiting = this.triggers.get(key);
    const trigger = waiting?.find((t) => t.pid === tgid);
    if (trigger) this.cancelTrigger(key, trigger);
    return trigger;
  }

  newRequestId(): bigint {
    return this.nextRequestId++;
  }

  onEvent(ev: FanEvent): void {
    this.eventsTotal++;
    if (ev.fd < 0) {
      this.opts.log.error({ mask: ev.mask, fd: ev.fd }, "event without fd");
      return;
    }
    this.pending.set(ev.fd, { answered: false });
    if (ev.pid === process.pid) return this.finish(ev.fd, "self");
    let st: FdStat;
    try {
      st = native.fstat(ev.fd);
    } catch {
      return this.finish(ev.fd, "protocol-error");
    }
    const mode = this.opts.modeOf(st.dev);
    if ((st.mode & S_IFMT) !== S_IFREG) return this.finishIgnored(ev.fd, mode, "resident");
    const key = inodeKey(st);
    const trigger = this.triggers.has(key) ? this.takeTrigger(key, tgidOf(ev.pid)) : undefined;
    if (trigger) {
      void this.queue.run(key, () => this.runTrigger(ev.fd, st, trigger));
      return;
    }
    const stub = this.readStub(ev.fd);
    if (stub === "corrupt") return this.finish(ev.fd, "stub-corrupt");
    if (stub === null || !needsRecall(stub.state)) return this.finishIgnored(ev.fd, mode, "resident");
    if (this.closing) return this.finish(ev.fd, "shutdown");
    if (this.inFlight >= this.opts.maxInFlight) return this.finish(ev.fd, "queue-full");
    this.inFlight++;
    void this.queue
      .run(key, () => this.recallEvent(ev, mode))
      .then(
        (reason) => this.finish(ev.fd, reason),
        (err: unknown) => {
          this.opts.log.error({ err: String(err) }, "recall crashed");
          this.finish(ev.fd, "protocol-error");
        },
      )
      .finally(() => this.inFlight--);
  }

  private async runTrigger(fd: number, st: FdStat, trigger: Trigger): Promise<void> {
    try {
      await trigger.run(fd, st);
    } catch (err: unknown) {
      this.opts.log.error({ err: String(err) }, "admin trigger failed");
    }
    // The admin command's own access is allowed whatever happened: it reads nothing it uses.
    this.finish(fd, "self");
  }

  readStub(fd: number): StubState | null | "corrupt" {
    const raw = native.fgetxattr(fd, STUB_XATTR);
    if (raw === null) return null;
    try {
      return decodeStubState(raw);
    } catch (err: unknown) {
      this.opts.log.error({ err: err instanceof StubStateError ? err.message : String(err) }, "corrupt stub state");
      return "corrupt";
    }
  }

  writeStub(fd: number, s: StubState): void {
    native.fsetxattr(fd, STUB_XATTR, encodeStubState(s), 0);
  }

  private async recallEvent(ev: FanEvent, mode: WatchMode): Promise<ListenerReason> {
    // Re-read under the queue: an earlier recall may have finished the file.
    const st = native.fstat(ev.fd);
    const stub = this.readStub(ev.fd);
    if (stub === "corrupt") return "stub-corrupt";
    if (stub === null || !needsRecall(stub.state)) {
      this.opts.source.ignore(ev.fd, mode);
      return "resident";
    }
    if (st.size !== stub.size) {
      // Rewritten behind the stub's back (O_TRUNC): the user's bytes win; never recall over them.
      this.writeStub(ev.fd, withState(stub, "dirty"));
      this.opts.source.ignore(ev.fd, mode);
      this.opts.log.warn({ ino: st.ino, size: st.size, stubSize: stub.size, reason: "stub-changed" }, "stub rewritten");
      return "stub-changed";
    }
    const whole = mode === "whole" || ev.range === null || ev.range.count === 0 || classifyAccess(ev.pid) === "modify";
    return this.recall(ev.fd, st, stub, whole ? null : ev.range, ev.pid);
  }

  /** Recalls `range` (null = the whole file) of a stub through `fd`. Runs inside the inode queue. */
  async recall(
    fd: number,
    st: FdStat,
    stub: StubState,
    range: { offset: number; count: number } | null,
    pid: number,
  ): Promise<ListenerReason> {
    if (range !== null) {
      const end = Math.min(st.size, range.offset + range.count);
      if (end <= range.offset) return "populated";
      const hole = native.seekHole(fd, range.offset);
      if (hole === -1 || hole >= end) return "populated";
    }
    const deadline = Date.now() + this.opts.recallTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      const reason = await this.recallOnce(fd, st, stub, range, pid, deadline);
      // A recall service that is restarting gets the event again, inside the same deadline.
      const retry = reason === "recall-unavailable" || reason === "fd-missing";
      if (!retry || this.closing || Date.now() + 250 >= deadline) return reason;
      this.opts.log.warn({ reason, attempt }, "recall service unavailable; retrying");
      await new Promise((r) => setTimeout(r, Math.min(1000, 100 * 2 ** attempt)));
    }
  }

  private async recallOnce(
    fd: number,
    st: FdStat,
    stub: StubState,
    range: { offset: number; count: number } | null,
    pid: number,
    deadline: number,
  ): Promise<ListenerReason> {
    const requestId = this.newRequestId();
    try {
      this.opts.channel.send(requestId, fd);
    } catch (err: unknown) {
      this.opts.log.warn({ err: String(err), reason: "recall-unavailable" }, "fd channel send failed");
      return "recall-unavailable";
    }
    const timeoutMs = Math.max(1, deadline - Date.now());
    const reply = await this.opts.recall.recall(
      {
        requestId,
        file: { dev: BigInt(st.dev), ino: BigInt(st.ino), size: BigInt(st.size), mtimeNs: st.mtimeNs },
        object: { bucket: stub.bucket, key: stub.key, versionId: stub.versionId },
        integrity: {
          contentSha256: stub.contentSha256,
          manifestSha256: stub.manifestSha256,
          chunkSize: BigInt(stub.chunkSize),
        },
        mode: range === null ? RecallMode.WHOLE : RecallMode.RANGE,
        ranges: range === null ? [] : [{ offset: BigInt(range.offset), length: BigInt(range.count) }],
        deadlineUnixMs: BigInt(deadline),
        accessor: pid > 0 ? describeAccessor(pid) : { pid },
      },
      timeoutMs,
    );
    if (!reply.ok) return reply.reason;
    if (reply.value.verdict !== Verdict.ALLOW) return fromProtoReason(reply.value.reason);
    native.futimens(fd, stub.atimeNs, stub.mtimeNs);
    if (reply.value.fullyPopulated) {
      this.writeStub(fd, withState(stub, "archived"));
      this.opts.source.ignore(fd, this.opts.modeOf(st.dev));
    } else if (stub.state === "released") {
      this.writeStub(fd, withState(stub, "partial"));
    }
    return "recalled";
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
    native.close(fd);
  }

  private answer(fd: number, reason: ListenerReason): void {
    const outcome = FAILURE_POLICY[reason];
    try {
      this.opts.source.respond(fd, outcome.verdict, outcome.errno);
    } catch (err: unknown) {
      this.opts.log.error({ err: String(err), reason }, "response write failed");
    }
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
    if (outcome.verdict === "deny") this.opts.log.warn({ reason, errno: outcome.errno }, "access denied");
  }

  /**
   * Shutdown: every event not yet answered is answered now with the shutdown verdict. The fds
   * stay open until their work finishes, so no fd number is reused under a running recall.
   */
  drain(): number {
    this.closing = true;
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
}
