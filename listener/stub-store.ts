// stub-store: the one place a file's stub state (the `trusted.fanrecall` xattr) is read and
// written, and the one status a file is reported with. The dispatcher, the recall runner,
// admin-ops, the mesh worker and `fanrecall status` all go through it. A value that does not
// decode is "corrupt" (logged here once, with why, when the store has a log); writing encodes
// first, and encoding refuses what decoding would (stub-state.ts), so no writer can leave a
// state that makes the file unreadable.
//
// Owns: the reads and writes of the xattr, and the status shape (FileStatus) that
// `fanrecall status` and the mesh STATUS operation both report. Must not own: the format
// (stub-state.ts), or any decision about an access. Holds no fds: callers pass fds they hold,
// open for reading or writing, or O_PATH (read through its /proc/self/fd link).
import type { Logger } from "pino";
import * as native from "../native/index.js";
import type { FdStat } from "../native/index.js";
import { STUB_XATTR, StubStateError, decodeStubState, encodeStubState } from "./stub-state.js";
import type { FileState, StubState } from "./stub-state.js";

/** The xattr on an fd open for reading or writing; the default is the real one (tests without root pass another). */
export interface StubXattr {
  get(fd: number): Buffer | null;
  set(fd: number, value: Uint8Array): void;
}

export const TRUSTED_XATTR: StubXattr = {
  get: (fd) => native.fgetxattr(fd, STUB_XATTR),
  set: (fd, value) => native.fsetxattr(fd, STUB_XATTR, value, 0),
};

/** What a file's xattr says: its stub state, null (no xattr: resident), or "corrupt". */
export type StubRead = StubState | null | "corrupt";

export class StubStore {
  constructor(
    private readonly log: Logger | null,
    private readonly xattr: StubXattr = TRUSTED_XATTR,
  ) {}

  /** The stub state of the file behind `fd`, open for reading or writing. */
  read(fd: number): StubRead {
    return this.decoded(this.xattr.get(fd));
  }

  /**
   * The stub state of the file behind an O_PATH fd (fgetxattr refuses one), through its
   * /proc/self/fd link: the same inode, whatever its path is now; nothing is opened.
   */
  readOPath(fd: number): StubRead {
    return this.decoded(native.getxattr(`/proc/self/fd/${fd}`, STUB_XATTR));
  }

  /** Writes `s` through `fd` (open for writing); throws StubStateError, writing nothing, for a state decoding would refuse. */
  write(fd: number, s: StubState): void {
    this.xattr.set(fd, encodeStubState(s));
  }

  private decoded(raw: Buffer | null): StubRead {
    if (raw === null) return null;
    try {
      return decodeStubState(raw);
    } catch (err: unknown) {
      this.log?.error({ err: err instanceof StubStateError ? err.message : String(err) }, "corrupt stub state");
      return "corrupt";
    }
  }
}

/** A file as `fanrecall status` and the mesh STATUS operation report it. */
export interface FileStatus {
  readonly state: FileState | "corrupt";
  readonly size: number;
  readonly populatedBytes: number;
  readonly object: { readonly bucket: string; readonly key: string; readonly versionId: string } | null;
}

/**
 * The status of a file of `st` whose xattr says `stub`. An archived file whose size or mtime
 * changed since is dirty; a released one holds no byte; a partial one holds what `dataBytes`
 * counts (SEEK_DATA on an fd that raises no event: only the caller knows how to get one, so
 * it is asked only for a partial file).
 */
export function fileStatus(st: Pick<FdStat, "size" | "mtimeNs">, stub: StubRead, dataBytes: () => number): FileStatus {
  const size = st.size;
  if (stub === null) return { state: "resident", size, populatedBytes: size, object: null };
  if (stub === "corrupt") return { state: "corrupt", size, populatedBytes: 0, object: null };
  const object = { bucket: stub.bucket, key: stub.key, versionId: stub.versionId };
  const changed = size !== stub.size || st.mtimeNs !== stub.mtimeNs;
  const state = stub.state === "archived" && changed ? "dirty" : stub.state;
  const populatedBytes = stub.state === "released" ? 0 : stub.state === "partial" ? dataBytes() : size;
  return { state, size, populatedBytes, object };
}
