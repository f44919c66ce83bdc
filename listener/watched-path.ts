// watched-path: turns a path named by a mesh admin request into an O_PATH fd of a regular
// file beneath one of the watched directories. This is the listener's one resolution of a
// name on a watched filesystem, and it is confined the way OpenBSD's privileged logger
// treats names from its unprivileged half: the name is checked here, then resolved by
// openat2 relative to the watch root's own fd with RESOLVE_BENEATH | NO_SYMLINKS |
// NO_MAGICLINKS | NO_XDEV, so no "..", symlink or mount crossing can lead outside. An O_PATH
// open reads nothing and raises no fanotify event, so the listener cannot wait on itself.
// The resolution runs with the recall service's credentials (native openBeneathAs: fsuid,
// fsgid and groups of one short-lived thread), so the kernel decides as it would for that
// user: every directory from '/' searchable, the file readable, ACLs included. What the
// caller learns is only what that user could learn itself: a name in a directory it cannot
// search is "not permitted" whether it exists or not; "not found" only where it may look.
//
// Owns: one O_PATH directory fd per watched directory (opened at start, closed in close()).
// Must not own: what is done with the file (mesh-worker), or whose credentials are used
// (the fd channel's peer); the caller closes the fd it gets.
import * as native from "../native/index.js";
import { FAN } from "../native/index.js";
import { AdminError } from "./admin-ops.js";

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
/** PATH_MAX: a longer name is refused before anything is resolved. */
export const MAX_PATH_BYTES = 4096;

export class WatchedPaths {
  private readonly roots: Array<{ dir: string; fd: number }>;

  constructor(dirs: readonly string[]) {
    this.roots = dirs.map((dir) => ({ dir, fd: native.openPath(dir, FAN.O_PATH | FAN.O_DIRECTORY) }));
    this.roots.sort((a, b) => b.dir.length - a.dir.length);
  }

  /**
   * An O_PATH fd of the regular file `path`, resolved as `cred` (the recall service's user)
   * and readable by it; throws AdminError (invalid-path, not-found, not-permitted).
   */
  resolve(path: string, cred: native.UserCred): number {
    if (Buffer.byteLength(path) > MAX_PATH_BYTES) throw new AdminError("invalid-path", "the path is too long");
    const segments = path.split("/").slice(1);
    if (!path.startsWith("/") || path.includes("\u0000") || segments.some((s) => s === "." || s === "..")) {
      throw new AdminError("invalid-path", "the path must be absolute, without '.' or '..' segments");
    }
    const root = this.roots.find((r) => path.startsWith(r.dir === "/" ? "/" : `${r.dir}/`));
    const rel = root ? path.slice(root.dir.length).replace(/^\/+/, "") : "";
    if (!root || rel === "") throw new AdminError("invalid-path", "the path is not a file beneath a watched directory");
    let fd: number;
    try {
      fd = native.openBeneathAs(root.fd, root.dir, rel, cred);
    } catch (err: unknown) {
      throw resolveError(err);
    }
    try {
      if ((native.fstat(fd).mode & S_IFMT) !== S_IFREG) throw new AdminError("invalid-path", "not a regular file");
    } catch (err: unknown) {
      native.close(fd);
      throw err;
    }
    return fd;
  }

  close(): void {
    for (const r of this.roots) native.close(r.fd);
    this.roots.length = 0;
  }
}

function resolveError(err: unknown): AdminError {
  const code = native.isNativeError(err) ? err.code : "";
  if (code === "ENOENT" || code === "ENOTDIR") return new AdminError("not-found", "no such file");
  if (code === "EXDEV" || code === "ELOOP") {
    return new AdminError("invalid-path", "the path leaves the watched directory (a symlink or another mount)");
  }
  if (code === "EACCES") return new AdminError("not-permitted", "permission denied");
  // setfsuid did not take: the listener lacks CAP_SETUID/CAP_SETGID. Refuse, never fall back to root's view.
  if (code === "EPERM")
    return new AdminError("not-permitted", "cannot check access as the recall user (no CAP_SETUID?)");
  return new AdminError("invalid-path", `cannot resolve the path (${code || String(err)})`);
}
