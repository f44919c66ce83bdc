// native/index.ts: typed facade over the fanrecall_native addon, and its loader.
//
// Owns: loading build/Release/fanrecall_native.node (found by walking up to the directory
// that holds package.json, so it works from native/ under tsx and from dist/native/ after
// tsc), the TypeScript types of every binding, the FAN constants, and the encoding that
// belongs next to them (denyErrno). It exports only what production code calls
// (test/unit/boundaries.test.ts checks); tests bring their own helpers for anything else:
// node:fs for plain reads and writes, test/helpers/sockets.ts for socket pairs, several fds
// in one message and datagram sockets.
// Must not: hold policy, logging, timers or state; every function is a thin, synchronous
// syscall wrapper. Errors are NativeError (code/errno/syscall), like Node's system errors.
// Fds: none held here. Functions that return fds (fanotifyInit, events, seqpacket*,
// recvWithFd, openPath, dup) hand ownership to the caller, who must close() them. A poller
// must be close()d before the fd it watches.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export type NativeError = Error & { code: string; errno: number; syscall: string };

export type FanEvent = {
  mask: number;
  /** Event fd (owned by the caller), FAN_NOFD, or -errno under FAN_REPORT_FD_ERROR. */
  fd: number;
  pid: number;
  range: { offset: number; count: number } | null;
};

export type PeerCred = { pid: number; uid: number; gid: number };

export type RecvResult = { data: Buffer; fds: number[]; truncated: boolean; eof: boolean };

export type FdStat = {
  dev: number;
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  blocks: number;
  blksize: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
};

type NativePoller = { start(): void; stop(): void; close(): void; ref(): void; unref(): void };

type NativeBinding = {
  constants: Record<string, number>;
  fanotifyInit(flags: number, eventFFlags: number): number;
  fanotifyMark(groupFd: number, flags: number, mask: number, dirFd: number, path: string | null): void;
  fanotifyReadInto(groupFd: number, out: Float64Array): number;
  fanotifyRespond(groupFd: number, eventFd: number, response: number): void;
  fanotifyRespondRange(groupFd: number, from: number, to: number, response: number): number;
  seqpacketListen(path: string, backlog?: number): number;
  seqpacketAccept(listenFd: number): number;
  seqpacketConnect(path: string): number;
  peerCred(sockFd: number): PeerCred;
  sendWithFds(sockFd: number, data: Uint8Array, fds: number[]): boolean;
  recvWithFd(sockFd: number, maxLen: number): RecvResult | null;
  datagramSendTo(path: string, data: Uint8Array, fds: number[]): void;
  fstatInto(fd: number, nums: Float64Array, times: BigInt64Array): void;
  fgetxattr(fd: number, name: string): Buffer | null;
  getxattr(path: string, name: string): Buffer | null;
  openBeneath(dirFd: number, path: string): number;
  openNoSymlinks(path: string, flags: number): number;
  createBeneath(dirFd: number, path: string, mode: number): number;
  mkdirAt(dirFd: number, name: string, mode: number): void;
  setNoNewPrivs(): void;
  setNonDumpable(): void;
  fsetxattr(fd: number, name: string, value: Uint8Array, flags: number): void;
  fremovexattr(fd: number, name: string): void;
  fallocate(fd: number, mode: number, offset: number, length: number): void;
  seek(fd: number, offset: number, whence: number): number;
  futimens(fd: number, atimeNs: bigint, mtimeNs: bigint): void;
  close(fd: number): void;
  openPath(path: string, flags: number, mode?: number): number;
  dup(fd: number): number;
  openTreeClone(path: string): number;
  reopenByHandle(fd: number, mountFd: number, flags: number): number;
  setLease(fd: number, type: number): void;
  FdPoller: new (fd: number, onReadable: (err?: NativeError) => void) => NativePoller;
  openBeneathAs(dirFd: number, rootPath: string, path: string, uid: number, gid: number, groups: number[]): number;
  peerGroups(sockFd: number): number[];
};

function packageRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) throw new Error(`fanrecall: no package.json above ${start}`);
  }
}

const moduleDir = dirname(fileURLToPath(import.meta.url));
const addonPath = join(packageRoot(moduleDir), "native", "build", "Release", "fanrecall_native.node");
const binding = createRequire(import.meta.url)(addonPath) as NativeBinding;

const FAN_KEYS = [
  "FAN_CLASS_PRE_CONTENT",
  "FAN_CLASS_NOTIF",
  "FAN_OPEN",
  "FAN_CLOEXEC",
  "FAN_NONBLOCK",
  "FAN_UNLIMITED_QUEUE",
  "FAN_UNLIMITED_MARKS",
  "FAN_REPORT_FD_ERROR",
  "FAN_REPORT_TID",
  "FAN_PRE_ACCESS",
  "FAN_OPEN_PERM",
  "FAN_ACCESS_PERM",
  "FAN_OPEN_EXEC_PERM",
  "FAN_CLOSE_WRITE",
  "FAN_MODIFY",
  "FAN_Q_OVERFLOW",
  "FAN_MARK_ADD",
  "FAN_MARK_REMOVE",
  "FAN_MARK_FLUSH",
  "FAN_MARK_INODE",
  "FAN_MARK_MOUNT",
  "FAN_MARK_FILESYSTEM",
  "FAN_MARK_EVICTABLE",
  "FAN_MARK_IGNORE",
  "FAN_MARK_IGNORED_MASK",
  "FAN_MARK_IGNORED_SURV_MODIFY",
  "FAN_ALLOW",
  "FAN_DENY",
  "FAN_NOFD",
  "O_RDONLY",
  "O_WRONLY",
  "O_RDWR",
  "O_CREAT",
  "O_EXCL",
  "O_TRUNC",
  "O_LARGEFILE",
  "O_CLOEXEC",
  "O_DIRECTORY",
  "O_NOFOLLOW",
  "O_NOATIME",
  "O_PATH",
  "O_NONBLOCK",
  "FALLOC_FL_KEEP_SIZE",
  "FALLOC_FL_PUNCH_HOLE",
  "XATTR_CREATE",
  "XATTR_REPLACE",
  "F_RDLCK",
  "F_WRLCK",
  "F_UNLCK",
] as const;

export type FanConstant = (typeof FAN_KEYS)[number];

function pickConstants(): Readonly<Record<FanConstant, number>> {
  const out: Partial<Record<FanConstant, number>> = {};
  for (const key of FAN_KEYS) {
    const value = binding.constants[key];
    if (typeof value !== "number") throw new Error(`fanrecall native: constant ${key} missing`);
    out[key] = value;
  }
  return Object.freeze(out as Record<FanConstant, number>);
}

/** fanotify, open, fallocate and xattr constants, read from the C headers at build time. */
export const FAN = pickConstants();

/** The dirFd value meaning "relative to the current directory". */
export const AT_FDCWD: number = requiredConstant("AT_FDCWD");
const SEEK_DATA = requiredConstant("SEEK_DATA");
const SEEK_HOLE = requiredConstant("SEEK_HOLE");

function requiredConstant(name: string): number {
  const value = binding.constants[name];
  if (typeof value !== "number") throw new Error(`fanrecall native: constant ${name} missing`);
  return value;
}

export function isNativeError(err: unknown, code?: string): err is NativeError {
  if (!(err instanceof Error)) return false;
  const e = err as Partial<NativeError>;
  if (typeof e.code !== "string" || typeof e.errno !== "number" || typeof e.syscall !== "string") return false;
  return code === undefined || e.code === code;
}

// ---- fanotify -------------------------------------------------------------------------------

/** FAN_DENY_ERRNO(errno): the reader's syscall fails with this errno (pre-content groups only). */
export function denyErrno(errno: number): number {
  if (!Number.isInteger(errno) || errno < 0 || errno > 255) throw new RangeError(`bad errno ${errno}`);
  return (FAN.FAN_DENY | (errno << 24)) >>> 0;
}

export function fanotifyInit(flags: number, eventFFlags: number): number {
  return binding.fanotifyInit(flags, eventFFlags);
}

/** dirFd AT_FDCWD with a path, or any fd with path null to mark that fd's own object. */
export function fanotifyMark(groupFd: number, flags: number, mask: number, dirFd: number, path: string | null): void {
  binding.fanotifyMark(groupFd, flags, mask, dirFd, path);
}

/** Six numbers per event (see fanotify.cc); room for a full 64 KiB read of minimal events. */
const EVENT_FIELDS = 6;
const EVENT_SLOTS = new Float64Array(EVENT_FIELDS * Math.floor((64 * 1024) / 24));

/** One non-blocking read of up to 64 KiB of events; [] when the queue is empty. */
export function fanotifyReadEvents(groupFd: number): FanEvent[] {
  const count = binding.fanotifyReadInto(groupFd, EVENT_SLOTS);
  const events: FanEvent[] = new Array<FanEvent>(count);
  for (let i = 0; i < count; i++) {
    const at = i * EVENT_FIELDS;
    const e = EVENT_SLOTS;
    events[i] = {
      mask: e[at],
      fd: e[at + 1],
      pid: e[at + 2],
      range: e[at + 3] ? { offset: e[at + 4], count: e[at + 5] } : null,
    };
  }
  return events;
}

/** Throws (EINVAL for a rejected response, ENOENT for an unknown fd); the event then stays pending. */
export function fanotifyRespond(groupFd: number, eventFd: number, response: number): void {
  binding.fanotifyRespond(groupFd, eventFd, response);
}

/** Writes `response` for every event fd number in [from, to); returns how many were pending. */
export function fanotifyRespondRange(groupFd: number, from: number, to: number, response: number): number {
  return binding.fanotifyRespondRange(groupFd, from, to, response);
}

// ---- poller ---------------------------------------------------------------------------------

/** Level-triggered readability watcher on the main loop (uv_poll). Close it before the fd. */
export class FdPoller {
  readonly #native: NativePoller;

  constructor(fd: number, onReadable: (err?: NativeError) => void) {
    this.#native = new binding.FdPoller(fd, onReadable);
  }

  start(): void {
    this.#native.start();
  }

  stop(): void {
    this.#native.stop();
  }

  close(): void {
    this.#native.close();
  }

  ref(): void {
    this.#native.ref();
  }

  unref(): void {
    this.#native.unref();
  }
}

// ---- seqpacket sockets and fd passing -------------------------------------------------------

/** Non-blocking, close-on-exec listening socket; never unlinks `path`. */
export function seqpacketListen(path: string, backlog?: number): number {
  return binding.seqpacketListen(path, backlog);
}

/** Accepted fd (non-blocking, close-on-exec), or -1 when no connection is pending. */
export function seqpacketAccept(listenFd: number): number {
  return binding.seqpacketAccept(listenFd);
}

/** Blocking connect, then the fd is switched to non-blocking. */
export function seqpacketConnect(path: string): number {
  return binding.seqpacketConnect(path);
}

export function peerCred(sockFd: number): PeerCred {
  return binding.peerCred(sockFd);
}

/** Sends one message with one fd (-1: none). False on EAGAIN. `data` must not be empty. */
export function sendWithFd(sockFd: number, data: Uint8Array, fd: number): boolean {
  return binding.sendWithFds(sockFd, data, fd < 0 ? [] : [fd]);
}

/**
 * Receives one message; null on EAGAIN. Every fd received is returned (room for 4) and is
 * owned by the caller, also when the message is rejected. `truncated` reports MSG_TRUNC or
 * MSG_CTRUNC; `eof` a closed peer.
 */
export function recvWithFd(sockFd: number, maxLen: number): RecvResult | null {
  return binding.recvWithFd(sockFd, maxLen);
}

/**
 * Sends one datagram with up to 8 fds to the unix SOCK_DGRAM socket at `path` (a leading '@'
 * is the abstract namespace, as in $NOTIFY_SOCKET), from a socket opened and closed here.
 */
export function datagramSendTo(path: string, data: Uint8Array, fds: number[]): void {
  binding.datagramSendTo(path, data, fds);
}

// ---- file operations on fds -----------------------------------------------------------------

const STAT_NUMS = new Float64Array(9);
const STAT_TIMES = new BigInt64Array(3);

export function fstat(fd: number): FdStat {
  binding.fstatInto(fd, STAT_NUMS, STAT_TIMES);
  const n = STAT_NUMS;
  const t = STAT_TIMES;
  return {
    dev: n[0],
    ino: n[1],
    mode: n[2],
    nlink: n[3],
    uid: n[4],
    gid: n[5],
    size: n[6],
    blocks: n[7],
    blksize: n[8],
    atimeNs: t[0],
    mtimeNs: t[1],
    ctimeNs: t[2],
  };
}

/** null when the attribute does not exist (ENODATA). */
export function fgetxattr(fd: number, name: string): Buffer | null {
  return binding.fgetxattr(fd, name);
}

/** Reads an xattr by path, following symlinks (for `/proc/self/fd/N` of an O_PATH fd); null when absent. */
export function getxattr(path: string, name: string): Buffer | null {
  return binding.getxattr(path, name);
}

/**
 * An O_PATH fd for `path` relative to `dirFd`, resolved by openat2 so that it cannot leave
 * dirFd's tree (no "..", symlink, magic link or mount crossing: EXDEV or ELOOP). The open
 * gives no access to content and raises no fanotify event.
 */
export function openBeneath(dirFd: number, path: string): number {
  return binding.openBeneath(dirFd, path);
}

/**
 * A new regular file at `path` beneath `dirFd`, opened write-only with `mode`: O_CREAT|O_EXCL
 * (an existing name, symlink included, is EEXIST) with openBeneath's confinement.
 */
export function createBeneath(dirFd: number, path: string, mode: number): number {
  return binding.createBeneath(dirFd, path, mode);
}

/** mkdirat for one path component (no "/", ".", ".."): EEXIST when the name exists. */
export function mkdirAt(dirFd: number, name: string, mode: number): void {
  binding.mkdirAt(dirFd, name, mode);
}

/** openat2 of `path` with `flags`, refusing any symlink in any component (ELOOP). */
export function openNoSymlinks(path: string, flags: number): number {
  return binding.openNoSymlinks(path, flags);
}

/** prctl(PR_SET_NO_NEW_PRIVS, 1): no later exec can gain privileges. */
export function setNoNewPrivs(): void {
  binding.setNoNewPrivs();
}

export function fsetxattr(fd: number, name: string, value: Uint8Array, flags: number): void {
  binding.fsetxattr(fd, name, value, flags);
}

/** Removes an xattr through an fd open for reading or writing; an absent one is no error. */
export function fremovexattr(fd: number, name: string): void {
  binding.fremovexattr(fd, name);
}

/** Deallocates a range without changing the file size. */
export function punchHole(fd: number, offset: number, length: number): void {
  binding.fallocate(fd, FAN.FALLOC_FL_PUNCH_HOLE | FAN.FALLOC_FL_KEEP_SIZE, offset, length);
}

/** Offset of the next data at or after `offset`, or -1 if there is none (ENXIO). */
export function seekData(fd: number, offset: number): number {
  return binding.seek(fd, offset, SEEK_DATA);
}

/** Offset of the next hole at or after `offset` (EOF counts), or -1 past EOF (ENXIO). */
export function seekHole(fd: number, offset: number): number {
  return binding.seek(fd, offset, SEEK_HOLE);
}

/**
 * Waits (on the main loop, no busy polling) for one message on a SOCK_SEQPACKET socket.
 * Rejects after timeoutMs. The caller owns any fds in the result.
 */
export function recvOnce(sockFd: number, maxLen: number, timeoutMs: number): Promise<RecvResult> {
  return new Promise((resolve, reject) => {
    const poller = new FdPoller(sockFd, () => {
      let msg: RecvResult | null;
      try {
        msg = recvWithFd(sockFd, maxLen);
      } catch (err: unknown) {
        done();
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      if (msg === null) return;
      done();
      resolve(msg);
    });
    const timer = setTimeout(() => {
      done();
      reject(Object.assign(new Error(`no message within ${timeoutMs} ms`), { code: "ETIMEDOUT" }));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      poller.close();
    };
    poller.start();
  });
}

/** Bytes below `size` that hold data (SEEK_DATA/SEEK_HOLE walk; lseek raises no fanotify event). */
export function dataBytes(fd: number, size: number): number {
  let total = 0;
  for (let pos = 0; pos < size;) {
    const data = seekData(fd, pos);
    if (data === -1 || data >= size) break;
    const hole = seekHole(fd, data);
    const end = hole === -1 ? size : Math.min(hole, size);
    total += end - data;
    pos = end;
  }
  return total;
}

export function futimens(fd: number, atimeNs: bigint, mtimeNs: bigint): void {
  binding.futimens(fd, atimeNs, mtimeNs);
}

export function close(fd: number): void {
  binding.close(fd);
}

/** openat(AT_FDCWD) with O_CLOEXEC always added; admin/CLI side only (mode for O_CREAT). */
export function openPath(path: string, flags: number, mode?: number): number {
  return binding.openPath(path, flags, mode);
}

/** Close-on-exec duplicate. */
export function dup(fd: number): number {
  return binding.dup(fd);
}

/**
 * A detached, private, read-write clone of the mount `path` is on, rooted at `path`: an
 * O_RDONLY directory fd of its root. No other process can reach it; it is writable even when
 * `path` was reached through a read-only mount. Freed when the last fd of it closes.
 */
export function openTreeClone(path: string): number {
  return binding.openTreeClone(path);
}

/** The inode behind `fd` (any fd, O_PATH included) opened again with `flags` on `mountFd`'s mount. */
export function reopenByHandle(fd: number, mountFd: number, flags: number): number {
  return binding.reopenByHandle(fd, mountFd, flags);
}

/** fcntl(F_SETLEASE): F_WRLCK only while no one else has the file open (EAGAIN); F_UNLCK ends it. */
export function setLease(fd: number, type: "write" | "none"): void {
  binding.setLease(fd, type === "write" ? FAN.F_WRLCK : FAN.F_UNLCK);
}

/**
 * prctl(PR_SET_DUMPABLE, 0): this process's /proc/PID files (environ, mem, fd...) become
 * root's and no process of its own uid can ptrace it. Called first thing by the processes
 * that hold the S3 secret (the recall service, the embedded store). execve resets it.
 */
export function setNonDumpable(): void {
  binding.setNonDumpable();
}

// --- as-user.cc: resolving a path with another user's credentials ---

/** The credentials a path is resolved with (openBeneathAs): never root's. */
export type UserCred = { readonly uid: number; readonly gid: number; readonly groups: readonly number[] };

/**
 * An O_PATH fd of `path` beneath `dirFd` (the directory `rootPath` names), resolved and
 * checked readable as `cred` would be: on a short-lived thread whose fsuid, fsgid and groups
 * are `cred`'s, so every directory from '/' must be searchable, the file readable (R_OK),
 * ACLs included. The same confinement as openBeneath. Throws the errno the user would have
 * got (EACCES, ENOENT, ELOOP, EXDEV, ...); EPERM (setfsuid) without CAP_SETUID/CAP_SETGID.
 * Raises no fanotify event (an O_PATH open and access checks read nothing).
 */
export function openBeneathAs(dirFd: number, rootPath: string, path: string, cred: UserCred): number {
  return binding.openBeneathAs(dirFd, rootPath, path, cred.uid, cred.gid, [...cred.groups]);
}

/** getsockopt(SO_PEERGROUPS): the supplementary groups of a unix-socket peer. */
export function peerGroups(sockFd: number): number[] {
  return binding.peerGroups(sockFd);
}
