// writable-view: the listener's own read-write view of each watched filesystem, and the one
// way the listener gets a writable fd of a file.
//
// Event fds are opened read-only (an O_RDWR event fd cannot be had for an access made
// through a read-only mount: the kernel would deny that access with EPERM). To write a
// recalled range, the stub state, the times or a punched hole, the listener reopens the
// event's inode by file handle through a detached, private clone of the watched mount,
// made read-write. The group carries an ignore mark on that clone, so nothing done through
// it (by the listener or by the recall service holding such an fd) raises an event.
//
// Owns: one directory fd per view (the root of the detached clone). Must not own: the fds
// it hands out (the caller closes them) or any decision about what they are for. Never
// opens a file by path: views are entered by handle only.
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

  /** Opens the private read-write view of the filesystem `dir` is on; returns its root fd. */
  add(dir: string, dev: number): number {
    const existing = this.views.find((v) => v.dev === dev);
    if (existing) return existing.rootFd;
    const rootFd = native.openTreeClone(dir);
    this.views.push({ dev, rootFd });
    return rootFd;
  }

  /**
   * The inode of `fd` (whose fstat is `st`) opened again through its filesystem's view:
   * O_RDWR for writing, O_RDONLY for reading without events. Throws ViewError when no view
   * reaches it (not on a watched filesystem, or outside the watched directory's tree).
   */
  reopen(fd: number, st: FdStat, access: "read" | "write"): number {
    const flags = (access === "write" ? FAN.O_RDWR : FAN.O_RDONLY) | FAN.O_LARGEFILE;
    // The view of the same st_dev first; a btrfs subvolume has an st_dev of its own, so the
    // others are tried too, and only an fd of the very same inode is accepted.
    const ordered = [...this.views].sort((a, b) => Number(b.dev === st.dev) - Number(a.dev === st.dev));
    let last: unknown = null;
    for (const view of ordered) {
      let out: number;
      try {
        out = native.reopenByHandle(fd, view.rootFd, flags);
      } catch (err: unknown) {
        last = err;
        continue;
      }
      const got = native.fstat(out);
      if (got.dev === st.dev && got.ino === st.ino) return out;
      native.close(out);
    }
    throw new ViewError(`cannot reopen inode ${st.dev}:${st.ino} through a writable view: ${String(last)}`);
  }

  close(): void {
    for (const v of this.views) native.close(v.rootFd);
    this.views.length = 0;
  }
}
