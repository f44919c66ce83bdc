// fanotify-source: owns the fanotify group of the pre-content class. It marks the watched
// filesystems (FAN_PRE_ACCESS range mode where the kernel and filesystem allow it, else
// FAN_OPEN_PERM whole-file mode), reads events off the main loop without blocking it, and
// writes responses and ignore marks. Event fds are opened read-only, so accesses made through
// read-only mounts get events too; each watched filesystem's private writable view (see
// writable-view) gets an ignore mark, so writes through it never raise events. An error
// reading the group (one event's fd that could not be opened, say) is logged and reading
// goes on: it never stops the listener.
//
// Owns: the group fd and its poller. Must not own: decisions about events (the dispatcher)
// or the event fds (handed to onEvent, whose owner closes them after answering).
import { statSync } from "node:fs";
import type { Logger } from "pino";
import * as native from "../native/index.js";
import { FAN } from "../native/index.js";
import type { FanEvent } from "../native/index.js";
import type { WritableViews } from "./writable-view.js";

export type WatchMode = "range" | "whole";

export interface Watch {
  readonly dir: string;
  readonly dev: number;
  readonly mode: WatchMode;
}

export interface FanotifySourceOptions {
  readonly dirs: readonly string[];
  readonly mode: "auto" | WatchMode;
  readonly log: Logger;
  readonly onEvent: (ev: FanEvent) => void;
  readonly views: WritableViews;
  /** Take over an existing group fd instead of creating one. */
  readonly groupFd?: number;
}

export const INIT_FLAGS =
  FAN.FAN_CLASS_PRE_CONTENT |
  FAN.FAN_CLOEXEC |
  FAN.FAN_NONBLOCK |
  FAN.FAN_UNLIMITED_QUEUE |
  FAN.FAN_UNLIMITED_MARKS |
  FAN.FAN_REPORT_TID;
/** Read-only: an O_RDWR event fd cannot be opened for an access through a read-only mount. */
export const EVENT_F_FLAGS = FAN.O_RDONLY | FAN.O_LARGEFILE | FAN.O_CLOEXEC;

/** A new group; with FAN_REPORT_FD_ERROR where the kernel has it (6.13+), so a failed event fd is that event's. */
export function createGroup(): number {
  try {
    return native.fanotifyInit(INIT_FLAGS | FAN.FAN_REPORT_FD_ERROR, EVENT_F_FLAGS);
  } catch (err: unknown) {
    if (!native.isNativeError(err, "EINVAL")) throw err;
    return native.fanotifyInit(INIT_FLAGS, EVENT_F_FLAGS);
  }
}

/** Reads every queued event batch (up to `batches`); a read error is reported, never thrown. */
export function readBatches(groupFd: number, batches: number, onError: (err: unknown) => void): FanEvent[][] {
  const out: FanEvent[][] = [];
  for (let i = 0; i < batches; i++) {
    let events: FanEvent[];
    try {
      events = native.fanotifyReadEvents(groupFd);
    } catch (err: unknown) {
      // Without FAN_REPORT_FD_ERROR a failed event-fd open fails the read; the kernel has
      // answered that event itself (deny). The next read goes on with the next event.
      onError(err);
      continue;
    }
    if (events.length === 0) break;
    out.push(events);
  }
  return out;
}

export function maskFor(mode: WatchMode): number {
  return mode === "range" ? FAN.FAN_PRE_ACCESS : FAN.FAN_OPEN_PERM;
}

export class FanotifySource {
  /** Ignore marks added since start (for the listener's metrics). */
  ignoreMarks = 0;
  /** Reads of the group that failed (an event whose fd the kernel could not open). */
  readErrors = 0;
  readonly groupFd: number;
  private poller: native.FdPoller | null = null;
  readonly watches: Watch[] = [];

  constructor(private readonly opts: FanotifySourceOptions) {
    this.groupFd = opts.groupFd ?? createGroup();
  }

  /** Marks every watched directory's filesystem; throws with a clear message on failure. */
  markAll(): Watch[] {
    for (const dir of this.opts.dirs) this.watches.push(this.mark(dir));
    return this.watches;
  }

  private mark(dir: string): Watch {
    // stat, not open: the listener never opens anything on a watched filesystem.
    const dev = statSync(dir).dev;
    const tryMark = (flags: number, mode: WatchMode): boolean => {
      try {
        native.fanotifyMark(this.groupFd, FAN.FAN_MARK_ADD | flags, maskFor(mode), native.AT_FDCWD, dir);
        return true;
      } catch (err: unknown) {
        if (native.isNativeError(err) && ["EOPNOTSUPP", "EINVAL", "EXDEV", "ENODEV"].includes(err.code)) return false;
        throw err;
      }
    };
    const modes: WatchMode[] = this.opts.mode === "auto" ? ["range", "whole"] : [this.opts.mode];
    for (const mode of modes) {
      if (tryMark(FAN.FAN_MARK_FILESYSTEM, mode) || tryMark(FAN.FAN_MARK_MOUNT, mode)) {
        this.ignoreView(dir, dev, mode);
        this.opts.log.info({ dir, mode }, "watching");
        return { dir, dev, mode };
      }
    }
    throw new Error(`cannot watch ${dir}: the kernel or filesystem refuses ${modes.join(" and ")} marks`);
  }

  /** The private writable view of `dir`'s filesystem, and the mount ignore mark that keeps it silent. */
  private ignoreView(dir: string, dev: number, mode: WatchMode): void {
    const root = this.opts.views.add(dir, dev);
    const flags = FAN.FAN_MARK_ADD | FAN.FAN_MARK_MOUNT | FAN.FAN_MARK_IGNORE | FAN.FAN_MARK_IGNORED_SURV_MODIFY;
    native.fanotifyMark(this.groupFd, flags, maskFor(mode), root, ".");
  }

  start(): void {
    this.poller = new native.FdPoller(this.groupFd, () => this.drain());
    this.poller.start();
  }

  /** Removes every mark of the watched filesystems: from now on no new event is raised. */
  flushMarks(): void {
    for (const w of this.watches) {
      for (const flags of [FAN.FAN_MARK_FILESYSTEM, FAN.FAN_MARK_MOUNT]) {
        try {
          native.fanotifyMark(this.groupFd, FAN.FAN_MARK_FLUSH | flags, 0, native.AT_FDCWD, w.dir);
        } catch (err: unknown) {
          this.opts.log.warn({ dir: w.dir, err: String(err) }, "flushing marks failed");
        }
      }
    }
  }

  /** Reads and hands out every event still queued (used at shutdown, after flushMarks). */
  drainQueued(): void {
    for (const events of readBatches(this.groupFd, 1000, (err) => this.readFailed(err))) {
      for (const ev of events) this.opts.onEvent(ev);
    }
  }

  /** Stops reading events (pending ones stay with their owners). */
  stop(): void {
    this.poller?.close();
    this.poller = null;
  }

  private drain(): void {
    for (const events of readBatches(this.groupFd, 16, (err) => this.readFailed(err))) {
      for (const ev of events) this.opts.onEvent(ev);
    }
  }

  private readFailed(err: unknown): void {
    this.readErrors++;
    this.opts.log.warn({ err: String(err), reason: "no-fd" }, "reading the group failed for one event");
  }

  respond(eventFd: number, verdict: "allow" | "deny", errno: number): void {
    const response = verdict === "allow" ? FAN.FAN_ALLOW : native.denyErrno(errno);
    try {
      native.fanotifyRespond(this.groupFd, eventFd, response);
    } catch (err: unknown) {
      // An invalid response leaves the event pending forever: answer with a plain EIO deny.
      if (native.isNativeError(err, "EINVAL") && response !== native.denyErrno(5)) {
        native.fanotifyRespond(this.groupFd, eventFd, native.denyErrno(5));
        return;
      }
      if (!native.isNativeError(err, "ENOENT")) throw err;
    }
  }

  /** Evictable ignore mark: a file that is not a stub costs no further events. */
  ignore(fd: number, mode: WatchMode): void {
    const flags = FAN.FAN_MARK_ADD | FAN.FAN_MARK_IGNORE | FAN.FAN_MARK_IGNORED_SURV_MODIFY | FAN.FAN_MARK_EVICTABLE;
    try {
      native.fanotifyMark(this.groupFd, flags, maskFor(mode), fd, null);
      this.ignoreMarks++;
    } catch (err: unknown) {
      this.opts.log.warn({ err: String(err) }, "ignore mark failed");
    }
  }

  /** Removes an ignore mark so the file raises events again (before it becomes a stub). */
  unignore(fd: number, mode: WatchMode): void {
    try {
      native.fanotifyMark(this.groupFd, FAN.FAN_MARK_REMOVE | FAN.FAN_MARK_IGNORE, maskFor(mode), fd, null);
    } catch (err: unknown) {
      if (!native.isNativeError(err, "ENOENT")) throw err;
    }
  }

  close(): void {
    this.stop();
    native.close(this.groupFd);
  }
}
