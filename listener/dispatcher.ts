// dispatcher: decides every fanotify event. A file that is not a stub is allowed at once and
// ignore-marked. For a stub, the event goes through the per-inode queue: the access is
// classified (read or modify), the inode is reopened writable through the listener's private
// view (event fds are read-only), that fd is handed to the recall service with the ranges it
// needs, and the kernel gets the verdict back. After a recall the listener restores the
// file's times and updates the stub state; a fully populated file stops being a stub.
// Nothing the recall service says is believed: an access is allowed only to bytes the
// listener has hashed itself and found equal to the trusted stub state (content-check.ts); a
// block found different is punched back to a hole (the stub stays retryable) and the access
// fails; the reply must carry the request's id; "fully populated" is checked against holes.
// Whatever goes wrong with one event is answered for that event (EIO) and logged; it never
// stops the others. New recalls are admitted by the recall budget (fair share per caller).
//
// Owns: every event fd from the moment onEvent receives it until it is answered and closed
// (exactly once, in `finish`), and the writable fd of each recall it runs (closed when that
// recall ends). Must not own: the group (fanotify-source), the wire (fd-channel,
// recall-client) or S3 anything. Never opens a watched file by path.
import type { Logger } from "pino";
import * as native from "../native/index.js";
import type { FanEvent, FdStat } from "../native/index.js";
import { RecallMode, Verdict } from "../proto/index.js";
import { classifyAccess, describeAccessor } from "./classify-access.js";
import type { AccessKind } from "./classify-access.js";
import type { CheckResult, ContentCheck } from "./content-check.js";
import type { AccessorInfo } from "./classify-access.js";
import { FAILURE_POLICY, fromProtoReason } from "./failure-policy.js";
import type { ListenerReason } from "./failure-policy.js";
import type { FanotifySource, WatchMode } from "./fanotify-source.js";
import type { FdChannel } from "./fd-channel.js";
import { InodeQueue } from "./inode-queue.js";
import { RecallBudget } from "./recall-budget.js";
import type { RecallClient } from "./recall-client.js";
import { STUB_XATTR, StubStateError, decodeStubState, encodeStubState, needsRecall, withState } from "./stub-state.js";
import type { StubState } from "./stub-state.js";
import type { WritableViews } from "./writable-view.js";

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

/** The stub-state xattr on an fd; the default is the real one (tests without root pass another). */
export interface StubXattr {
  get(fd: number): Buffer | null;
  set(fd: number, value: Uint8Array): void;
}

const TRUSTED_XATTR: StubXattr = {
  get: (fd) => native.fgetxattr(fd, STUB_XATTR),
  set: (fd, value) => native.fsetxattr(fd, STUB_XATTR, value, 0),
};

export interface DispatcherOptions {
  readonly source: Pick<FanotifySource, "respond" | "ignore">;
  readonly channel: Pick<FdChannel, "send">;
  readonly recall: Pick<RecallClient, "recall">;
  readonly log: Logger;
  readonly views: Pick<WritableViews, "reopen">;
  readonly recallTimeoutMs: number;
  /** Distinct files recalled at once. */
  readonly maxRecalls: number;
  /** The part of maxRecalls one uid or cgroup may hold (0 < share <= 1). */
  readonly callerShare: number;
  /** Event fds held at once (readers waiting); beyond it new events get EAGAIN. */
  readonly maxHeld: number;
  readonly modeOf: (dev: number) => WatchMode;
  /** The listener's own check of recalled bytes. */
  readonly content: ContentCheck;
  /** Test seams: where the stub state is kept, and how a blocked thread's access is classified. */
  readonly stubXattr?: StubXattr;
  readonly classify?: (tid: number) => AccessKind;
}

export function inodeKey(st: { dev: number; ino: number }): string {
  return `${st.dev}:${st.ino}`;
}

export class Dispatcher {
  private readonly queue = new InodeQueue();
  private readonly budget: RecallBudget;
  /** Random start: ids never repeat across listener restarts (the recall service may still hold old ones). */
  private nextRequestId =
    BigInt.asUintN(62, BigInt(Date.now()) << 20n) | BigInt(Math.floor(Math.random() * 2 ** 20)) | 1n;
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

  /** The listener's check of recalled bytes (admin-ops vouches for a release with it too). */
  get content(): ContentCheck {
    return this.opts.content;
  }

  newRequestId(): bigint {
    return this.nextRequestId++;
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
    const stub = this.readStub(ev.fd);
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
      .run(key, () => this.recallEvent(ev, mode, accessor))
      .then(
        (reason) => this.finish(ev.fd, reason),
        (err: unknown) => {
          this.opts.log.error({ err: String(err), reason: "internal-error" }, "recall crashed");
          this.finish(ev.fd, "internal-error");
        },
      )
      .finally(() => this.budget.done(key));
  }

  readStub(fd: number): StubState | null | "corrupt" {
    const raw = (this.opts.stubXattr ?? TRUSTED_XATTR).get(fd);
    if (raw === null) return null;
    try {
      return decodeStubState(raw);
    } catch (err: unknown) {
      this.opts.log.error({ err: err instanceof StubStateError ? err.message : String(err) }, "corrupt stub state");
      return "corrupt";
    }
  }

  writeStub(fd: number, s: StubState): void {
    (this.opts.stubXattr ?? TRUSTED_XATTR).set(fd, encodeStubState(s));
  }

  private async recallEvent(ev: FanEvent, mode: WatchMode, accessor: () => AccessorInfo): Promise<ListenerReason> {
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
      const r = await this.withWritable(ev.fd, st, (rw) => {
        this.writeStub(rw, withState(stub, "dirty"));
        return "stub-changed" as const;
      });
      this.opts.source.ignore(ev.fd, mode);
      this.opts.log.warn({ ino: st.ino, size: st.size, stubSize: stub.size, reason: "stub-changed" }, "stub rewritten");
      return r;
    }
    const classify = this.opts.classify ?? classifyAccess;
    const whole = mode === "whole" || ev.range === null || ev.range.count === 0 || classify(ev.pid) === "modify";
    const range = whole ? null : ev.range;
    if (range !== null && !this.opts.content.needsManifest(stub)) {
      // Checked on the event fd (it raises no event): no writable fd for a read of bytes
      // already there and checked. A stub still marked released with data in it got that data
      // from a recall its listener did not live to record: say partial, so status and release
      // see it. Blocks found wrong are punched, and the recall below writes them again.
      // (Without the manifest at hand, the recall brings it.)
      const end = range.offset + range.count;
      const pre = await this.opts.content.check(ev.fd, inodeKey(st), stub, range.offset, end);
      if (pre.ok && rangePresent(ev.fd, st.size, range)) {
        if (stub.state === "released")
          await this.withWritable(ev.fd, st, (rw) => this.writeStub(rw, withState(stub, "partial")));
        return "populated";
      }
      if (!pre.ok && pre.bad.length > 0) await this.withWritable(ev.fd, st, (rw) => this.refuse(rw, st, pre));
    }
    const who = ev.pid > 0 ? accessor() : null;
    return this.withWritable(ev.fd, st, (rw) => this.recall(rw, st, stub, range, who));
  }

  /** Runs `work` with a writable fd of the inode behind `fd` (from the private view), closed after. */
  async withWritable<T>(fd: number, st: FdStat, work: (rw: number) => T | Promise<T>): Promise<T | "not-writable"> {
    let rw: number;
    try {
      rw = this.opts.views.reopen(fd, st, "write");
    } catch (err: unknown) {
      this.opts.log.warn({ ino: st.ino, err: String(err), reason: "not-writable" }, "no writable view of the file");
      return "not-writable";
    }
    try {
      return await work(rw);
    } finally {
      native.close(rw);
    }
  }

  /**
   * Recalls `range` (null = the whole file) of a stub through `fd`, a writable fd of the
   * private view (its writes raise no event). Runs inside the inode queue.
   */
  async recall(
    fd: number,
    st: FdStat,
    stub: StubState,
    range: { offset: number; count: number } | null,
    who: AccessorInfo | null,
  ): Promise<ListenerReason> {
    const deadline = Date.now() + this.opts.recallTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      const reason = await this.recallOnce(fd, st, stub, range, who, deadline);
      // A recall service that is restarting gets the event again, inside the same deadline;
      // bytes refused by the check (punched since) get one more recall.
      const retry =
        reason === "recall-unavailable" || reason === "fd-missing" || (reason === "checksum-mismatch" && attempt === 0);
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
    who: AccessorInfo | null,
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
    const call = this.opts.recall.recall(
      {
        requestId,
        file: { dev: BigInt(st.dev), ino: BigInt(st.ino), size: BigInt(st.size), mtimeNs: st.mtimeNs },
        object: {
          bucket: stub.bucket,
          key: stub.key,
          versionId: stub.versionId,
          manifestVersionId: stub.manifestVersionId,
        },
        integrity: {
          contentSha256: stub.contentSha256,
          manifestSha256: stub.manifestSha256,
          chunkSize: BigInt(stub.chunkSize),
        },
        mode: range === null ? RecallMode.WHOLE : RecallMode.RANGE,
        ranges: range === null ? [] : [{ offset: BigInt(range.offset), length: BigInt(range.count) }],
        deadlineUnixMs: BigInt(deadline),
        accessor: who ?? { pid: 0 },
        wantManifest: this.opts.content.needsManifest(stub),
      },
      timeoutMs,
    );
    // Hash what arrives while the recall runs (the asked range and what the recall service
    // writes ahead of it): the check below then has little left to do.
    const key = inodeKey(st);
    const early = range === null ? [0, st.size] : [range.offset, range.offset + range.count + CHECK_AHEAD_BYTES];
    await this.opts.content.checkWhile(fd, key, stub, early[0], early[1], call);
    const reply = await call;
    if (!reply.ok) return reply.reason;
    if (reply.value.requestId !== requestId) {
      this.opts.log.error({ reason: "protocol-error" }, "recall reply for another request");
      return "protocol-error";
    }
    if (reply.value.verdict !== Verdict.ALLOW) return fromProtoReason(reply.value.reason);
    const content = this.opts.content;
    if (reply.value.manifest.length > 0 && !content.accept(stub, reply.value.manifest)) {
      this.opts.log.error({ ino: st.ino, reason: "checksum-mismatch" }, "manifest refused: not the stub state's");
      return "checksum-mismatch";
    }
    // The access goes on only over bytes checked here, whatever the reply claimed.
    const asked = range === null ? [0, st.size] : [range.offset, range.offset + range.count];
    const checked = await content.check(fd, key, stub, asked[0], asked[1]);
    if (!checked.ok) return this.refuse(fd, st, checked);
    native.futimens(fd, stub.atimeNs, stub.mtimeNs);
    // "Fully populated" is believed only when the file has no hole left (SEEK_HOLE at EOF)
    // and every byte is checked: a false claim must never make a stub look resident (and get
    // an ignore mark, after which no access is checked).
    const full =
      reply.value.fullyPopulated && !hasHole(fd, st.size) ? await content.check(fd, key, stub, 0, st.size) : null;
    if (full?.ok) {
      this.writeStub(fd, withState(stub, "archived"));
      this.opts.source.ignore(fd, this.opts.modeOf(st.dev));
    } else {
      if (full && !full.ok) this.refuse(fd, st, full);
      if (stub.state === "released") this.writeStub(fd, withState(stub, "partial"));
    }
    return "recalled";
  }

  /**
   * A check failed: punches the blocks whose bytes are not the file's back to holes through
   * `rw` (so the stub stays valid and a later recall writes them again), and names the reason.
   */
  private refuse(rw: number, st: FdStat, r: Exclude<CheckResult, { ok: true }>): ListenerReason {
    // Blocks start and end on multiples of 4096 but the last, which ends at EOF: punch that
    // one past EOF, never into a neighbouring block (it may be checked already).
    for (const [start, end] of r.bad) {
      const stop = end >= st.size ? alignUp(end, PUNCH_ALIGN) : end;
      native.punchHole(rw, start, stop - start);
    }
    const reason: ListenerReason = r.why === "mismatch" ? "checksum-mismatch" : "protocol-error";
    this.opts.log.error(
      { ino: st.ino, why: r.why, badBlocks: r.bad.length, reason },
      "recalled bytes refused: not the file's content",
    );
    return reason;
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

/** Past a ranged recall's end, bytes the recall service may write ahead (and the listener hashes meanwhile). */
const CHECK_AHEAD_BYTES = 32 * 1024 * 1024;

/** The last block's punch ends past EOF at a multiple of this (of every fs block size in use): punching part of an fs block keeps it allocated. */
const PUNCH_ALIGN = 1024 * 1024;

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** Whether every byte of `range` (clipped to the file's size) is already in the file. */
function rangePresent(fd: number, size: number, range: { offset: number; count: number }): boolean {
  const end = Math.min(size, range.offset + range.count);
  if (end <= range.offset) return true;
  const hole = native.seekHole(fd, range.offset);
  return hole === -1 || hole >= end;
}

/** Whether any byte below `size` is still a hole. */
function hasHole(fd: number, size: number): boolean {
  if (size === 0) return false;
  const hole = native.seekHole(fd, 0);
  return hole !== -1 && hole < size;
}
