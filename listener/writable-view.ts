// writable-view: the listener's own read-write view of each watched filesystem, and the one
// way the listener gets a writable fd of a file.
//
// Event fds are opened read-only (an O_RDWR event fd cannot be had for an access made
// through a read-only mount: the kernel would deny that access with EPERM). To write a
// recalled range, the stub state, the times or a punched hole, the listener reopens the
// event's inode by file handle through a detached, private clone of the watched mount, made
// read-write. That open raises FAN_OPEN in a small notification group marked on the clone
// alone, whose event fds are opened O_RDWR by the kernel and, like every fanotify event fd,
// FMODE_NONOTIFY: writes through such an fd raise no event in any group (another listener's
// beside this one, say, during an upgrade). That event fd is what a recall writes through.
// The pre-content group also ignores the clone (fanotify-source), so the reopen itself never
// waits on it.
//
// Owns: one directory fd per view (the root of the detached clone) and the notification
// group. Must not own: the fds it hands out (the caller closes them) or any decision about
// what they are for. Never opens a file by path: views are entered by handle only.
import * as native from "../native/index.js";
import { FAN } from "../native/index.js";
import type { FdStat } from "../native/index.js";

export class ViewError extends Error {
  override readonly name = "ViewError";
}

interface View {
  readonly dev: number;
  readonly rootFd: number;
}

export class WritableViews {
  private readonly views: View[] = [];
  private readonly opens = native.fanotifyInit(
    FAN.FAN_CLASS_NOTIF | FAN.FAN_CLOEXEC | FAN.FAN_NONBLOCK | FAN.FAN_UNLIMITED_QUEUE,
    FAN.O_RDWR | FAN.O_LARGEFILE | FAN.O_CLOEXEC,
  );

  /** Opens the private read-write view of the filesystem `dir` is on; returns its root fd. */
  add(dir: string, dev: number): number {
    const existing = this.views.find((v) => v.dev === dev);
    if (existing) return existing.rootFd;
    const rootFd = native.openTreeClone(dir);
    native.fanotifyMark(this.opens, FAN.FAN_MARK_ADD | FAN.FAN_MARK_MOUNT, FAN.FAN_OPEN, rootFd, ".");
    this.views.push({ dev, rootFd });
    return rootFd;
  }

  /**
   * The inode of `fd` (whose fstat is `st`) opened again through its filesystem's view:
   * "write" gives an O_RDWR fd that raises no event at all; "read" an O_RDONLY one whose
   * reads this listener's group ignores. Throws ViewError when no view reaches it.
   */
  reopen(fd: number, st: FdStat, access: "read" | "write"): number {
    this.discardOpens();
    const opened = this.reopenThroughView(fd, st);
    if (access === "read") {
      this.discardOpens();
      return opened;
    }
    try {
      return this.takeOpenEvent(st);
    } finally {
      native.close(opened);
    }
  }

  /**
   * The O_RDONLY reopen by handle, through the view of `st.dev` first (btrfs subvolumes differ).
   * O_NOATIME: what the listener and the recall service read (archive, verify, hashing) is no
   * use of the file; its atime stays the users' (the policy engine's "last used").
   */
  private reopenThroughView(fd: number, st: FdStat): number {
    const ordered = [...this.views].sort((a, b) => Number(b.dev === st.dev) - Number(a.dev === st.dev));
    let last: unknown = null;
    for (const view of ordered) {
      let out: number;
      try {
        out = native.reopenByHandle(fd, view.rootFd, FAN.O_RDONLY | FAN.O_LARGEFILE | FAN.O_NOATIME);
      } catch (err: unknown) {
        last = err;
        continue;
      }
      const got = native.fstat(out);
      if (got.dev === st.dev && got.ino === st.ino) return out;
      native.close(out);
    }
    throw new ViewError(`cannot reopen inode ${st.dev}:${st.ino} through a view: ${String(last)}`);
  }

  /** The event fd of the open just made (queued synchronously by the open itself). */
  private takeOpenEvent(st: FdStat): number {
    let found = -1;
    for (const ev of native.fanotifyReadEvents(this.opens)) {
      if (ev.fd < 0) continue;
      if (found < 0 && ev.pid === process.pid) {
        const got = native.fstat(ev.fd);
        if (got.dev === st.dev && got.ino === st.ino) {
          found = ev.fd;
          continue;
        }
      }
      native.close(ev.fd);
    }
    if (found < 0) throw new ViewError(`no notify-free fd for inode ${st.dev}:${st.ino}`);
    return found;
  }

  /** Closes the fds of open events nobody asked for (read reopens, earlier leftovers). */
  private discardOpens(): void {
    for (;;) {
      const events = native.fanotifyReadEvents(this.opens);
      if (events.length === 0) return;
      for (const ev of events) if (ev.fd >= 0) native.close(ev.fd);
    }
  }

  close(): void {
    for (const v of this.views) native.close(v.rootFd);
    this.views.length = 0;
    native.close(this.opens);
  }
}
