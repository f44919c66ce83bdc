// classify-access: tells a read-only access from one that may modify the file, for a thread
// blocked in a pre-content event. The event range cannot tell them apart; the blocked
// thread's kernel stack (/proc/TID/stack, root only) names the operation exactly and cannot
// be raced while the thread waits. Anything not recognised is treated as "modify", which
// costs a whole-file recall but never lets old data land over new.
//
// It also describes the blocked process for the recall service's audit record (uid, command,
// cgroup), from the same /proc entries, read while the process waits and cannot go away.
//
// Owns: reading /proc for one tid. Must not own: any watched file; opens only /proc files.
import { readFileSync } from "node:fs";

export type AccessKind = "read" | "modify";

const MAP_SHARED = 0x1;
const O_ACCMODE = 0o3;

function readProc(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

function mmapIsReadOnly(tid: number): boolean {
  // /proc/TID/syscall: "9 addr len prot flags fd off ..." for mmap.
  const sys = readProc(`/proc/${tid}/syscall`)?.trim().split(/\s+/);
  if (!sys || sys[0] !== "9" || sys.length < 7) return false;
  const flags = Number.parseInt(sys[4], 16);
  if ((flags & MAP_SHARED) === 0) return true;
  const fd = Number.parseInt(sys[5], 16);
  const info = readProc(`/proc/${tid}/fdinfo/${fd}`);
  const m = info ? /^flags:\s+([0-7]+)/m.exec(info) : null;
  return m !== null && (Number.parseInt(m[1], 8) & O_ACCMODE) === 0;
}

/** Classifies the access of the blocked thread `tid`. */
export function classifyAccess(tid: number): AccessKind {
  const stack = readProc(`/proc/${tid}/stack`);
  if (!stack) return "modify";
  if (/\bvfs_write\b|do_ftruncate|vfs_truncate|vfs_fallocate|do_sendfile|vfs_copy_file_range|splice/.test(stack)) {
    return "modify";
  }
  if (/\bvfs_read\b|\bvfs_readv\b/.test(stack)) return "read";
  if (/\bvm_mmap_pgoff\b/.test(stack)) return mmapIsReadOnly(tid) ? "read" : "modify";
  return "modify";
}

/** The thread group (process) id of a thread, or the tid itself when it cannot be read. */
export function tgidOf(tid: number): number {
  const status = readProc(`/proc/${tid}/status`);
  const m = status ? /^Tgid:\s+(\d+)/m.exec(status) : null;
  return m ? Number(m[1]) : tid;
}

export interface AccessorInfo {
  pid: number;
  uid: number;
  command: string;
  cgroup: string;
  /** The recall rule that admitted the access (recall-rules.ts), for the audit record. */
  rule?: string;
}

/** Who is blocked: real uid, command name and cgroup v2 path (empty where unreadable). */
export function describeAccessor(pid: number): AccessorInfo {
  const status = readProc(`/proc/${pid}/status`);
  const uid = status ? /^Uid:\s+(\d+)/m.exec(status) : null;
  const cgroup = readProc(`/proc/${pid}/cgroup`) ?? "";
  const unified = /^0::(.*)$/m.exec(cgroup);
  return {
    pid,
    uid: uid ? Number(uid[1]) : 0,
    command: (readProc(`/proc/${pid}/comm`) ?? "").trim().slice(0, 64),
    cgroup: (unified ? unified[1] : "").trim().slice(0, 512),
  };
}
