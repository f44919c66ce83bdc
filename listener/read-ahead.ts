// read-ahead: progressive completion of a stub read from start to end. Once two reads of an
// inode follow each other (the second starts where the first ended), a stream of window
// recalls runs ahead of the reader: WINDOWS_IN_FLIGHT windows of whole chunks at a time, each
// one an ordinary ranged recall through the recall runner (the recall service writes the
// verified bytes, the listener hashes them itself before anything counts as there). The
// reader's own events then find their bytes present and checked, or wait for the window that
// brings them instead of sending a recall of their own. The stream stays at most AHEAD_BYTES
// past the furthest byte a reader has asked for, and ends when the file is complete, when a
// window fails (readers then recall for themselves, as without a stream), when no reader has
// come for IDLE_MS, or when it is settled. At most MAX_STREAMS run at once, half of them for
// one uid: one user reading many big files never takes every stream from the others.
//
// A stream writes outside the inode queue, so whatever in the queue could change the file or
// its state (a write, a whole-file recall, a release, a restore, a read's own recall of bytes
// at or past the stream's start) settles the inode's stream first: no new window starts, and
// settle resolves once every window in flight has been answered (the recall service writes
// nothing for a call after answering it).
//
// Owns: each stream's writable fd (from the private view; closed when the stream ends) and the
// bounded table of where each inode's last read ended. Must not own: event fds or verdicts
// (the dispatcher), the check (content-check) or the recall itself (recall-runner). Never
// opens a watched file by path.
import type { Logger } from "pino";
import * as native from "../native/index.js";
import type { AccessorInfo } from "./classify-access.js";
import type { ContentCheck } from "./content-check.js";
import type { ListenerReason } from "./failure-policy.js";
import type { ByteRange } from "./recall-runner.js";
import { RecentMap } from "./recent-map.js";
import type { StubState } from "./stub-state.js";
import type { FdStat } from "../native/index.js";

/** Bytes one window recalls, rounded to whole chunks (at least one chunk). */
const WINDOW_BYTES = 8 * 1024 * 1024;
/** Windows recalled at once by one stream. */
const WINDOWS_IN_FLIGHT = 3;
/** How far past the furthest byte asked for a stream may run. */
const AHEAD_BYTES = 64 * 1024 * 1024;
/** A stream no reader has advanced for this long ends. */
const IDLE_MS = 5_000;
/** Streams running at once, over all files (beyond it readers recall for themselves). */
const MAX_STREAMS = 8;
/** Streams one uid may hold at once: one user reading many big files leaves the rest to others. */
const MAX_STREAMS_PER_UID = MAX_STREAMS / 2;
/** After a window of an inode's stream failed, how long that inode gets no new stream (a stalling or lying service is not asked again at once; a passing fault does not end read-ahead for good). */
const FAILED_PAUSE_MS = 60_000;
/** Inodes whose last read end is remembered. */
const MAX_TRACKED = 4096;

export interface ReadAheadOptions {
  readonly log: Logger;
  readonly content: Pick<ContentCheck, "check">;
  /** One window's recall through the writable fd `rw` (the runner's recall, checks included). */
  readonly recallWindow: (
    rw: number,
    st: FdStat,
    stub: StubState,
    range: ByteRange,
    who: AccessorInfo | null,
  ) => Promise<ListenerReason>;
  /** Records the file's state through `rw` once its last window is in (archived when complete and checked). */
  readonly finish: (rw: number, st: FdStat, stub: StubState) => Promise<void>;
}

/** A stream's start: the file, its stub state, a writable fd it takes over, for whom. */
export interface StreamStart {
  readonly key: string;
  readonly st: FdStat;
  readonly stub: StubState;
  /** Opens the writable fd the stream owns (called only when a stream starts). */
  readonly openWritable: () => number;
  /** Who reads (read from /proc only when a stream may start: not for every read). */
  readonly who: () => AccessorInfo | null;
}

interface Stream {
  readonly key: string;
  readonly rw: number;
  readonly st: FdStat;
  readonly stub: StubState;
  readonly who: AccessorInfo | null;
  /** Where the first window started: bytes below it are not the stream's to bring. */
  readonly start: number;
  /** Where the next window starts (everything below it was asked for already). */
  next: number;
  /** The furthest byte any reader has asked for. */
  readerEnd: number;
  lastPoke: number;
  /** Readers waiting for a window now (a stream is not idle while one waits). */
  waiters: number;
  /** Ended by settle, shutdown or a failed window (not by reaching the end of the file). */
  stopped: boolean;
  /** Why it ended, for its log line. */
  why: "complete" | "idle" | "settled" | "window-failed";
  /** Wakes the stream (a reader advanced, or it is settled) and whoever waits for a window. */
  wake: () => void;
  changed: Promise<void>;
  done: Promise<void>;
}

export class ReadAhead {
  private readonly streams = new Map<string, Stream>();
  private readonly lastEnd = new RecentMap<string, number>(MAX_TRACKED);
  /** When an inode's stream last had a window fail: no new stream for it until FAILED_PAUSE_MS later (bounded like lastEnd). */
  private readonly failed = new RecentMap<string, number>(MAX_TRACKED);

  constructor(private readonly opts: ReadAheadOptions) {}

  /**
   * A read of `range` of a stub (inside the inode queue). Advances the inode's stream, or
   * starts one when this read begins where the previous one ended and more than a window is
   * left to read. True when the read follows the previous one (or a stream runs): a reader
   * going from start to end.
   */
  observe(range: ByteRange, start: StreamStart): boolean {
    const end = range.offset + range.count;
    const s = this.streams.get(start.key);
    if (s) {
      s.readerEnd = Math.max(s.readerEnd, end);
      s.lastPoke = Date.now();
      s.wake();
      return true;
    }
    const sequential = this.lastEnd.get(start.key) === range.offset;
    this.lastEnd.set(start.key, end);
    const failedAt = this.failed.get(start.key);
    if (failedAt !== undefined && Date.now() - failedAt < FAILED_PAUSE_MS) return sequential;
    if (!sequential || this.streams.size >= MAX_STREAMS || start.st.size - end <= WINDOW_BYTES) return sequential;
    const who = start.who();
    if (this.heldBy(who) < MAX_STREAMS_PER_UID) this.begin(start, who, end);
    return true;
  }

  /** Streams started for reads of `who`'s uid (of no process: one share for all such reads). */
  private heldBy(who: AccessorInfo | null): number {
    let n = 0;
    for (const s of this.streams.values()) if ((s.who?.uid ?? -1) === (who?.uid ?? -1)) n++;
    return n;
  }

  /**
   * Waits, until `deadline`, for the inode's stream to bring [from, to) and the check to pass
   * over it. False when no stream is bringing those bytes (the caller recalls them itself).
   */
  async waitFor(key: string, fd: number, from: number, to: number, deadline: number): Promise<boolean> {
    const s = this.streams.get(key);
    if (!s) return false;
    s.waiters++;
    try {
      for (;;) {
        if (s.stopped || from < s.start || from >= s.next + WINDOW_BYTES * WINDOWS_IN_FLIGHT) return false;
        const changed = s.changed;
        // Only hashed, never refused here: a block may be in the middle of being written. (A
        // block found equal was data when hashed: check never hashes a hole.)
        if ((await this.opts.content.check(fd, key, s.stub, from, to)).ok) return true;
        if (this.streams.get(key) !== s) return false;
        const left = deadline - Date.now();
        if (left <= 0) return false;
        await firstOr([changed], left);
      }
    } finally {
      s.waiters--;
    }
  }

  /**
   * Whether a recall of `range` (null: the whole file) could meet the inode's stream: its
   * writes start at the stream's first window. A read wholly below it (a second reader behind
   * the first) recalls for itself beside the stream, which goes on.
   */
  overlaps(key: string, range: ByteRange | null): boolean {
    const s = this.streams.get(key);
    return s !== undefined && (range === null || range.offset + range.count > s.start);
  }

  /**
   * Ends the inode's stream: resolves once no window of it is in flight any more (each has
   * its own deadline), true; false when `deadline` came first (the caller waits no longer).
   */
  async settle(key: string, deadline = Infinity): Promise<boolean> {
    const s = this.streams.get(key);
    if (!s) return true;
    s.stopped = true;
    s.wake();
    if (deadline === Infinity) {
      await s.done;
      return true;
    }
    return firstOr([s.done], deadline - Date.now());
  }

  /** Shutdown: every stream stops starting windows. */
  stopAll(): void {
    for (const s of this.streams.values()) {
      s.stopped = true;
      s.wake();
    }
  }

  /** Streams running now. */
  get size(): number {
    return this.streams.size;
  }

  private begin(start: StreamStart, who: AccessorInfo | null, from: number): void {
    let rw: number;
    try {
      rw = start.openWritable();
    } catch (err: unknown) {
      this.opts.log.warn({ err: String(err), reason: "not-writable" }, "no read-ahead stream: no writable view");
      return;
    }
    const chunk = Math.max(1, start.stub.chunkSize);
    const first = Math.floor(from / chunk) * chunk;
    let wake = () => undefined as void;
    const s: Stream = {
      key: start.key,
      rw,
      st: start.st,
      stub: start.stub,
      who,
      start: first,
      next: first,
      readerEnd: from,
      lastPoke: Date.now(),
      waiters: 0,
      stopped: false,
      why: "settled",
      wake: () => wake(),
      changed: Promise.resolve(),
      done: Promise.resolve(),
    };
    const renew = () => {
      s.changed = new Promise<void>((res) => {
        wake = () => {
          renew();
          res();
        };
      });
    };
    renew();
    this.streams.set(start.key, s);
    this.opts.log.info({ ino: s.st.ino, from: first, size: s.st.size }, "read-ahead stream started");
    s.done = this.run(s)
      .catch((err: unknown) => this.opts.log.error({ err: String(err), reason: "internal-error" }, "read-ahead failed"))
      .finally(() => {
        this.streams.delete(s.key);
        native.close(s.rw);
        this.opts.log.info({ ino: s.st.ino, until: s.next, why: s.why }, "read-ahead stream ended");
        s.stopped = true;
        s.wake();
      });
  }

  /** The stream's loop: windows in order, at most WINDOWS_IN_FLIGHT at once, paced by the reader. */
  private async run(s: Stream): Promise<void> {
    const chunk = Math.max(1, s.stub.chunkSize);
    const window = Math.max(chunk, Math.floor(WINDOW_BYTES / chunk) * chunk);
    const inFlight = new Set<Promise<void>>();
    while (!s.stopped && s.next < s.st.size) {
      if (s.waiters === 0 && Date.now() - s.lastPoke > IDLE_MS) {
        s.why = "idle";
        break;
      }
      if (inFlight.size >= WINDOWS_IN_FLIGHT || s.next >= s.readerEnd + AHEAD_BYTES) {
        await this.pause(s, inFlight);
        continue;
      }
      const range = { offset: s.next, count: Math.min(window, s.st.size - s.next) };
      s.next += range.count;
      const p: Promise<void> = this.window(s, range).finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    await Promise.all(inFlight);
    // The last window is in and none is in flight: the state says what the file now holds.
    if (!s.stopped && s.next >= s.st.size) {
      s.why = "complete";
      await this.opts.finish(s.rw, s.st, s.stub);
    }
  }

  /** Waits for a window to end, a reader to advance, or the idle time to pass. */
  private async pause(s: Stream, inFlight: ReadonlySet<Promise<void>>): Promise<void> {
    await firstOr([s.changed, ...inFlight], IDLE_MS);
  }

  private async window(s: Stream, range: ByteRange): Promise<void> {
    let reason: ListenerReason;
    try {
      reason = await this.opts.recallWindow(s.rw, s.st, s.stub, range, s.who);
    } catch (err: unknown) {
      this.opts.log.error({ err: String(err), reason: "internal-error" }, "read-ahead window crashed");
      reason = "internal-error";
    }
    if (reason !== "recalled") {
      // Readers recall for themselves from here on, each as without a stream.
      if (!s.stopped) {
        this.opts.log.warn({ ino: s.st.ino, offset: range.offset, reason }, "read-ahead window failed");
        s.why = "window-failed";
        this.failed.set(s.key, Date.now());
      }
      s.stopped = true;
    }
    s.wake();
  }
}

/**
 * Waits for the first of `events` (promises that never reject) or for `ms` to pass, the
 * timer cleared either way: true when an event came first.
 */
async function firstOr(events: ReadonlyArray<Promise<unknown>>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((res) => (timer = setTimeout(() => res(false), Math.max(0, ms))));
  try {
    return await Promise.race([...events.map((e) => e.then(() => true)), late]);
  } finally {
    clearTimeout(timer);
  }
}
