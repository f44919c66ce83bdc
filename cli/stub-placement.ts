// stub-placement: recreates a released stub from a file record (rebuild, undelete), beneath a
// watched directory and by fds only. Missing directories are made one component at a time
// (mkdirat, root:root 0755); the file is created O_CREAT|O_EXCL with no symlink, "..", or
// mount crossing on the way (native createBeneath), so an existing file is never touched and
// nothing lands outside the watched directory. It is made root's and mode 0600, so no one else
// can open it before it is a stub, and sized (a hole: no data is downloaded); then the
// listener makes it a stub (it checks the file is root's, unshared, holds no data; under a
// write lease it writes the trusted state, drops any ignore mark, sets the recorded times) and
// only then gives it its recorded owner and mode, without setuid/setgid bits (a record comes
// from the store: it must not be able to make a privileged program).
//
// Owns: an O_PATH fd per directory on the current descent (closed by close()) and the new
// file's fd while it is placed. Must not own: what to place (the commands decide).
import { ftruncateSync, unlinkSync } from "node:fs";
import * as native from "../native/index.js";
import { REASON_NAMES } from "../proto/index.js";
import type { ReasonName } from "../proto/index.js";
import type { FileRecord } from "../proto/namespace-format.js";
import { isRelativePath } from "../proto/namespace-format.js";
import type { AdminClient } from "./admin-client.js";
import { stubStateOf } from "../listener/file-records.js";

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const STUB_TIMEOUT_MS = 30_000;

export interface Placement {
  readonly action: "created" | "skipped" | "failed";
  readonly reason?: ReasonName;
  readonly error?: string;
}

function code(err: unknown): string {
  const c = typeof err === "object" && err !== null && "code" in err ? err.code : "";
  return typeof c === "string" ? c : "";
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Whether `name` in `dirFd` is (still) the inode of `fd`. */
function sameInode(fd: number, dirFd: number, name: string): boolean {
  let now: number;
  try {
    now = native.openBeneath(dirFd, name);
  } catch {
    return false;
  }
  try {
    const [a, b] = [native.fstat(fd), native.fstat(now)];
    return a.dev === b.dev && a.ino === b.ino;
  } finally {
    native.close(now);
  }
}

/** A reason the listener replied with, if it is one of the set. */
function asReason(r: string | undefined): ReasonName {
  return REASON_NAMES.find((n) => n === r) ?? "protocol-error";
}

/** The reason a failed syscall on the way gives. */
function wayReason(err: unknown): ReasonName {
  const c = code(err);
  return c === "ELOOP" || c === "EXDEV" || c === "ENOTDIR" ? "invalid-path" : "internal-error";
}

export class StubPlacer {
  /** The directories of the current descent: [relative path, O_PATH fd]; [0] is the root's. */
  private readonly stack: Array<[string, number]>;

  constructor(
    rootFd: number,
    private readonly admin: AdminClient,
    private readonly dryRun: boolean,
  ) {
    this.stack = [["", native.dup(rootFd)]];
  }

  /** Places `record` at `path` (relative to the watched directory). */
  async place(path: string, record: FileRecord): Promise<Placement> {
    if (!isRelativePath(path)) return { action: "failed", reason: "invalid-path", error: "not a relative path" };
    const slash = path.lastIndexOf("/");
    const name = path.slice(slash + 1);
    let dirFd: number | null;
    try {
      dirFd = this.descend(slash < 0 ? "" : path.slice(0, slash));
    } catch (err: unknown) {
      return { action: "failed", reason: wayReason(err), error: message(err) };
    }
    if (dirFd === null) return { action: "created" };
    return this.dryRun ? this.wouldPlace(dirFd, name) : this.create(dirFd, name, record);
  }

  /** The fd of directory `dir`, made where missing; null in a dry run when it does not exist yet. */
  private descend(dir: string): number | null {
    const parts = dir === "" ? [] : dir.split("/");
    let depth = 1;
    while (
      depth < this.stack.length &&
      depth <= parts.length &&
      this.stack[depth][0] === parts.slice(0, depth).join("/")
    ) {
      depth++;
    }
    for (const [, fd] of this.stack.splice(depth)) native.close(fd);
    for (let i = depth - 1; i < parts.length; i++) {
      const parent = this.stack[this.stack.length - 1][1];
      const fd = this.openDir(parent, parts[i]);
      if (fd === null) return null;
      this.stack.push([parts.slice(0, i + 1).join("/"), fd]);
    }
    return this.stack[this.stack.length - 1][1];
  }

  private openDir(parent: number, name: string): number | null {
    let fd: number;
    try {
      fd = native.openBeneath(parent, name);
    } catch (err: unknown) {
      if (code(err) !== "ENOENT") throw err;
      if (this.dryRun) return null;
      try {
        native.mkdirAt(parent, name, 0o755);
      } catch (e: unknown) {
        if (code(e) !== "EEXIST") throw e;
      }
      fd = native.openBeneath(parent, name);
    }
    if ((native.fstat(fd).mode & S_IFMT) !== S_IFDIR) {
      native.close(fd);
      // A symlink (openBeneath gives an O_PATH fd of the link itself) or a file: never gone through.
      throw Object.assign(new Error(`${name} is not a directory`), { code: "ENOTDIR" });
    }
    return fd;
  }

  private wouldPlace(dirFd: number, name: string): Placement {
    try {
      native.close(native.openBeneath(dirFd, name));
      return { action: "skipped", reason: "exists", error: "a file is already there" };
    } catch (err: unknown) {
      if (code(err) === "ENOENT") return { action: "created" };
      return { action: "failed", reason: wayReason(err), error: message(err) };
    }
  }

  private async create(dirFd: number, name: string, r: FileRecord): Promise<Placement> {
    let opath: number;
    try {
      const fd = native.createBeneath(dirFd, name, 0o600);
      try {
        ftruncateSync(fd, r.size);
        // The same inode, by its fd's own link (no name looked up again); the write fd must go
        // before the listener takes its lease.
        opath = native.openPath(`/proc/self/fd/${fd}`, native.FAN.O_PATH);
      } finally {
        native.close(fd);
      }
    } catch (err: unknown) {
      if (code(err) === "EEXIST") return { action: "skipped", reason: "exists", error: "a file is already there" };
      return { action: "failed", reason: wayReason(err), error: message(err) };
    }
    let made = false;
    try {
      const owner = { uid: r.uid, gid: r.gid, mode: r.mode };
      const reply = await this.admin.requestStub(opath, stubStateOf(r), owner, STUB_TIMEOUT_MS);
      if (!reply.ok) return { action: "failed", reason: asReason(reply.reason), error: reply.error };
      made = true;
      return { action: "created" };
    } catch (err: unknown) {
      return { action: "failed", reason: "internal-error", error: message(err) };
    } finally {
      // A file that did not become a stub goes again: it was ours, new and empty. Only if the
      // name still holds that very inode: in a directory others may write, someone could have
      // renamed ours away and put a file of theirs there.
      if (!made && sameInode(opath, dirFd, name)) unlinkSync(`/proc/self/fd/${dirFd}/${name}`);
      native.close(opath);
    }
  }

  close(): void {
    for (const [, fd] of this.stack.splice(0)) native.close(fd);
  }
}
