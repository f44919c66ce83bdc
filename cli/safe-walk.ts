// safe-walk: expands the PATH arguments of admin commands into regular files, by fds only.
// Each argument is resolved beneath a watched directory with no symlink on the way
// (watch-roots); a directory is listed through its own fd (/proc/self/fd/N names the
// directory that fd holds, whatever its path has become) and each entry is opened relative to
// that fd, with no symlink, "..", or mount crossing (native openBeneath). So a directory
// swapped for a symlink, before or during the walk, is never followed: a symlink met while
// recursing is skipped like any non-regular file, one named as an argument is refused.
//
// Owns: an O_PATH fd for each directory on the current descent and one for the current file;
// the walk closes them all (a yielded file's fd is borrowed until the next step). Must not
// own: what is done with the files (admin-commands), or any open for reading.
import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import * as native from "../native/index.js";
import type { FdStat } from "../native/index.js";
import type { ReasonName } from "../proto/reasons.js";
import { resolveError } from "./watch-roots.js";
import type { WatchRoots } from "./watch-roots.js";

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

export interface WalkProblem {
  readonly path: string;
  readonly reason: ReasonName;
  readonly error: string;
}

export interface WalkedFile {
  readonly path: string;
  /** O_PATH, borrowed: valid until the walk takes its next step. */
  readonly fd: number;
  readonly st: FdStat;
}

/** Yields the regular files the arguments name; problems (refused, missing, specials) go to `problems`. */
export function* walkFiles(
  roots: WatchRoots,
  paths: readonly string[],
  problems: WalkProblem[],
): Generator<WalkedFile> {
  for (const p of paths) {
    const path = resolve(p);
    let fd: number;
    try {
      fd = roots.open(path);
    } catch (err: unknown) {
      const e = resolveError(err);
      problems.push({ path, reason: e.reason, error: e.message });
      continue;
    }
    yield* walkFd(roots, { path, fd, explicit: true }, problems);
  }
}

/** Walks the file or directory `at.fd` (owned: closed here). */
function* walkFd(
  roots: WatchRoots,
  at: { path: string; fd: number; explicit: boolean },
  problems: WalkProblem[],
): Generator<WalkedFile> {
  const { path, fd } = at;
  try {
    const st = native.fstat(fd);
    const type = st.mode & S_IFMT;
    if (type === S_IFREG) {
      yield { path, fd, st };
    } else if (type === S_IFDIR) {
      let names: string[];
      try {
        names = readdirSync(`/proc/self/fd/${fd}`).sort();
      } catch (err: unknown) {
        problems.push({ path, reason: "not-permitted", error: err instanceof Error ? err.message : String(err) });
        return;
      }
      for (const name of names) {
        const child = openChild(roots, { dirFd: fd, path: join(path, name), name }, problems);
        if (child !== null) yield* walkFd(roots, { path: join(path, name), fd: child, explicit: false }, problems);
      }
    } else if (at.explicit) {
      const error =
        type === S_IFLNK ? "the path is a symlink; root commands never follow one" : "not a regular file or directory";
      problems.push({ path, reason: "invalid-path", error });
    }
  } finally {
    native.close(fd);
  }
}

/** An O_PATH fd of `name` in the directory `dirFd`; null when it is not walked (a mount, or gone). */
function openChild(
  roots: WatchRoots,
  c: { dirFd: number; path: string; name: string },
  problems: WalkProblem[],
): number | null {
  try {
    return native.openBeneath(c.dirFd, c.name);
  } catch (err: unknown) {
    // Another mount: walked only when it is itself a watched directory.
    if (native.isNativeError(err, "EXDEV")) return roots.rootAt(c.path);
    const e = resolveError(err);
    problems.push({ path: c.path, reason: e.reason, error: e.message });
    return null;
  }
}
