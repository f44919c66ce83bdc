// recall-runner: runs the recall of one stub, inside its inode's queue (the dispatcher and
// admin-ops put it there). For an event it re-reads the stub state (an earlier recall may
// have finished the file), leaves a file rewritten behind the stub's back alone (dirty),
// picks range or whole file, and serves a read of bytes already present and checked without
// any recall. A recall reopens the inode writable through the listener's private view (event
// fds are read-only), sends that fd and the Recall RPC under one request id (FdRequests),
// retries within one deadline while the recall service restarts, and once more after bytes
// were refused. Nothing the recall service says is believed: an access is allowed only to
// bytes the listener has hashed itself and found equal to the trusted stub state
// (content-check.ts); a block found different is punched back to a hole (the stub stays
// retryable); "fully populated" is checked against holes. After a recall it restores the
// file's times and writes the stub state (partial, or archived plus an ignore mark). Reads
// that follow each other get a read-ahead stream (read-ahead.ts, owned here): its windows are
// recalls of this runner, and a read it brings waits for its window instead.
//
// Owns: the writable fd of each recall it runs (closed when that recall ends) and the read-ahead
// streams (each holds a writable fd until it ends). Must not own:
// event fds or answers (the dispatcher), the queue, the wire (fd-channel, recall-client) or
// S3 anything. Never opens a watched file by path.
import type { Logger } from "pino";
import * as native from "../native/index.js";
import type { FanEvent, FdStat } from "../native/index.js";
import type { RecallRequestSchema, RecallResponse } from "../proto/index.js";
import { RecallMode, Verdict } from "../proto/index.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { classifyAccess } from "./classify-access.js";
import type { AccessKind, AccessorInfo } from "./classify-access.js";
import type { CheckResult, ContentCheck } from "./content-check.js";
import { fromProtoReason } from "./failure-policy.js";
import type { ListenerReason } from "./failure-policy.js";
import type { FanotifySource, WatchMode } from "./fanotify-source.js";
import { inodeKey } from "./inode-queue.js";
import { ReadAhead } from "./read-ahead.js";
import type { FdRequests, RecallClient } from "./recall-client.js";
import { needsRecall, withRecallTime, withState } from "./stub-state.js";
import type { StubState } from "./stub-state.js";
import type { StubStore } from "./stub-store.js";
import type { WritableViews } from "./writable-view.js";

export interface RecallRunnerOptions {
  readonly source: Pick<FanotifySource, "ignore">;
  readonly requests: Pick<FdRequests, "call">;
  readonly recall: Pick<RecallClient, "recall">;
  readonly log: Logger;
  readonly views: Pick<WritableViews, "reopen">;
  readonly stubs: Pick<StubStore, "read" | "write">;
  /** The listener's own check of recalled bytes. */
  readonly content: ContentCheck;
  readonly recallTimeoutMs: number;
  readonly modeOf: (dev: number) => WatchMode;
  /** Test seam: how a blocked thread's access is classified. */
  readonly classify?: (tid: number) => AccessKind;
}

/** A byte range of a file; null where a range is asked for means the whole file. */
export interface ByteRange {
  readonly offset: number;
  readonly count: number;
}

/** How one recall is run: its deadline, and whether it is a read-ahead window. */
export interface RecallHow {
  /** When the reader stops waiting (default: now + the recall timeout). */
  readonly deadline?: number;
  /**
   * A read-ahead window (read-ahead.ts): exactly the range is written (range_only), it is
   * checked after the reply only, and the stream records the file's state when it ends.
   */
  readonly window?: boolean;
  /** A read that begins where the previous read of the file ended (the recall service fetches deeper ahead). */
  readonly sequential?: boolean;
}

export class RecallRunner {
  private stopping = false;
  private readonly ahead: ReadAhead;

  constructor(private readonly opts: RecallRunnerOptions) {
    this.ahead = new ReadAhead({
      log: opts.log,
      content: opts.content,
      recallWindow: (rw, st, stub, range, who) => this.recall(rw, st, stub, range, who, { window: true }),
      finish: (rw, st, stub) => this.record(rw, st, withRecallTime(stub, Date.now()), true),
    });
  }

  /** Shutdown: no recall is retried and no read-ahead window started from now on. */
  stop(): void {
    this.stopping = true;
    this.ahead.stopAll();
  }

  /**
   * Ends the read-ahead stream of inode `key`, if any, once its windows in flight are answered:
   * whatever may change the file or its state (a write, a release, a restore) runs after it.
   */
  async settle(key: string): Promise<void> {
    await this.ahead.settle(key);
  }

  /** The work for an event on a stub, admitted and queued by the dispatcher: the reason it is answered with. */
  async forEvent(ev: FanEvent, mode: WatchMode, accessor: () => AccessorInfo): Promise<ListenerReason> {
    // Re-read under the queue: an earlier recall may have finished the file.
    const st = native.fstat(ev.fd);
    const stub = this.opts.stubs.read(ev.fd);
    if (stub === "corrupt") return "stub-corrupt";
    if (stub === null || !needsRecall(stub.state)) {
      this.opts.source.ignore(ev.fd, mode);
      return "resident";
    }
    if (st.size !== stub.size) {
      // Rewritten behind the stub's back (O_TRUNC): the user's bytes win; never recall over them.
      const r = await this.withWritable(ev.fd, st, (rw) => {
        this.opts.stubs.write(rw, withState(stub, "dirty"));
        return "stub-changed" as const;
      });
      this.opts.source.ignore(ev.fd, mode);
      this.opts.log.warn({ ino: st.ino, size: st.size, stubSize: stub.size, reason: "stub-changed" }, "stub rewritten");
      return r;
    }
    const classify = this.opts.classify ?? classifyAccess;
    const whole = mode === "whole" || ev.range === null || ev.range.count === 0 || classify(ev.pid) === "modify";
    const range = whole ? null : ev.range;
    // Who reads is read from /proc only when it is needed: a stream starts, or a recall.
    let seen: AccessorInfo | null | undefined;
    const who = () => (seen === undefined ? (seen = ev.pid > 0 ? accessor() : null) : seen);
    const key = inodeKey(st);
    const deadline = Date.now() + this.opts.recallTimeoutMs;
    let sequential = false;
    if (range !== null) {
      const openWritable = () => this.opts.views.reopen(ev.fd, st, "write");
      sequential = this.ahead.observe(range, { key, st, stub, who, openWritable });
      if (await this.ahead.waitFor(key, ev.fd, range.offset, range.offset + range.count, deadline)) return "populated";
    }
    // From here on nothing else writes these bytes: a stream still running there ends first
    // (or the access fails at its deadline, as a recall of its own would).
    if (this.ahead.overlaps(key, range) && !(await this.ahead.settle(key, deadline))) return "timeout";
    if (range !== null && !this.opts.content.needsManifest(stub) && (await this.alreadyThere(ev.fd, st, stub, range))) {
      return "populated";
    }
    return this.withWritable(ev.fd, st, (rw) => this.recall(rw, st, stub, range, who(), { deadline, sequential }));
  }

  /**
   * Whether the bytes of a read are present and checked already, on the event fd (it raises
   * no event): then no writable fd is needed. A stub still marked released with data in it
   * got that data from a recall its listener did not live to record: it is said partial, so
   * status and release see it. Blocks found wrong are punched, and the recall writes them
   * again. (Without the manifest at hand this is not asked: the recall brings it.)
   */
  private async alreadyThere(fd: number, st: FdStat, stub: StubState, range: ByteRange): Promise<boolean> {
    const end = range.offset + range.count;
    const pre = await this.opts.content.check(fd, inodeKey(st), stub, range.offset, end);
    if (pre.ok && rangePresent(fd, st.size, range)) {
      if (stub.state === "released")
        await this.withWritable(fd, st, (rw) => this.opts.stubs.write(rw, withState(stub, "partial")));
      return true;
    }
    if (!pre.ok && pre.bad.length > 0) await this.withWritable(fd, st, (rw) => this.refuse(rw, st, pre));
    return false;
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
    range: ByteRange | null,
    who: AccessorInfo | null,
    how: RecallHow = {},
  ): Promise<ListenerReason> {
    const deadline = how.deadline ?? Date.now() + this.opts.recallTimeoutMs;
    const window = how.window === true;
    const sequential = how.sequential === true;
    for (let attempt = 0; ; attempt++) {
      const reason = await this.recallOnce({ fd, st, stub, range, who, deadline, window, sequential });
      // A recall service that is restarting gets the event again, inside the same deadline;
      // bytes refused by the check (punched since) get one more recall.
      const retry =
        reason === "recall-unavailable" || reason === "fd-missing" || (reason === "checksum-mismatch" && attempt === 0);
      if (!retry || this.stopping || Date.now() + 250 >= deadline) return reason;
      this.opts.log.warn({ reason, attempt }, "recall service unavailable; retrying");
      await new Promise((r) => setTimeout(r, Math.min(1000, 100 * 2 ** attempt)));
    }
  }

  /** One attempt: the fd and the RPC under one id; what arrives is hashed while the recall runs. */
  private async recallOnce(a: Attempt): Promise<ListenerReason> {
    const { fd, st, stub, range } = a;
    const reply = await this.opts.requests.call("recall", fd, async (requestId) => {
      const call = this.opts.recall.recall(this.request(requestId, a), Math.max(1, a.deadline - Date.now()));
      // Hash what arrives while the recall runs (the asked range and the rest of its chunks,
      // which the recall service writes as they are verified): the check after the reply then
      // has little left to do. Not for a window: other windows are being written beside it,
      // and it is checked after its reply.
      const early = range === null ? [0, st.size] : [range.offset, alignUp(range.offset + range.count, stub.chunkSize)];
      if (!a.window) await this.opts.content.checkWhile(fd, inodeKey(st), stub, early[0], early[1], call);
      return call;
    });
    if (!reply.ok) return reply.reason;
    if (reply.value.verdict !== Verdict.ALLOW) return fromProtoReason(reply.value.reason);
    return this.believe(a, reply.value);
  }

  private request(requestId: bigint, a: Attempt): MessageInitShape<typeof RecallRequestSchema> {
    const { st, stub, range } = a;
    return {
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
      deadlineUnixMs: BigInt(a.deadline),
      accessor: a.who ?? { pid: 0 },
      wantManifest: this.opts.content.needsManifest(stub),
      rangeOnly: a.window,
      sequential: a.sequential,
    };
  }

  /** An ALLOW reply: the access goes on only over bytes checked here, whatever the reply claimed. */
  private async believe(a: Attempt, reply: RecallResponse): Promise<ListenerReason> {
    const { fd, st, stub, range } = a;
    const content = this.opts.content;
    const key = inodeKey(st);
    if (reply.manifest.length > 0 && !content.accept(stub, reply.manifest)) {
      this.opts.log.error({ ino: st.ino, reason: "checksum-mismatch" }, "manifest refused: not the stub state's");
      return "checksum-mismatch";
    }
    const asked = range === null ? [0, st.size] : [range.offset, range.offset + range.count];
    const checked = await content.check(fd, key, stub, asked[0], asked[1]);
    if (!checked.ok) return this.refuse(fd, st, checked);
    native.futimens(fd, stub.atimeNs, stub.mtimeNs);
    // A window's stream records the state once, when it ends (its other windows are being
    // written now, and a full check would hash them mid-write).
    if (a.window) return "recalled";
    // The times are the archived ones again: the state keeps when the file was last recalled.
    await this.record(fd, st, withRecallTime(stub, Date.now()), reply.fullyPopulated);
    return "recalled";
  }

  /**
   * Writes the stub state after a recall through `fd`: archived (and an ignore mark) when the
   * file is complete, else partial. Completeness is believed only when the file has no hole
   * left (SEEK_HOLE at EOF) and every byte is checked: a false claim must never make a stub
   * look resident (and get an ignore mark, after which no access is checked).
   */
  private async record(fd: number, st: FdStat, stub: StubState, claimedFull: boolean): Promise<void> {
    const full =
      claimedFull && !hasHole(fd, st.size) ? await this.opts.content.check(fd, inodeKey(st), stub, 0, st.size) : null;
    if (full?.ok) {
      this.opts.stubs.write(fd, withState(stub, "archived"));
      this.opts.source.ignore(fd, this.opts.modeOf(st.dev));
    } else {
      if (full && !full.ok) this.refuse(fd, st, full);
      this.opts.stubs.write(fd, withState(stub, "partial"));
    }
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
}

/** One recall attempt: the writable fd, the file as it was stat'ed, its stub state, what to recall, for whom, until when. */
interface Attempt {
  readonly fd: number;
  readonly st: FdStat;
  readonly stub: StubState;
  readonly range: ByteRange | null;
  readonly who: AccessorInfo | null;
  readonly deadline: number;
  /** A read-ahead window (RecallHow.window). */
  readonly window: boolean;
  /** RecallHow.sequential. */
  readonly sequential: boolean;
}

/** The last block's punch ends past EOF at a multiple of this (of every fs block size in use): punching part of an fs block keeps it allocated. */
const PUNCH_ALIGN = 1024 * 1024;

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** Whether every byte of `range` (clipped to the file's size) is already in the file. */
function rangePresent(fd: number, size: number, range: ByteRange): boolean {
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
