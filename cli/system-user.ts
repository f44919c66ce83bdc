// system-user: the dedicated system user `fanrecall start` runs the recall service and the
// embedded store as (`fanrecall` by default), created when missing.
//
// Owns: looking the user up (getent passwd) and creating it (useradd --system, no home, no
// login shell, its own group); refusing uids that other programs run as (0, and 65534,
// nobody: any user's program can become it, e.g. NFS squashing, setpriv in a test, or a
// daemon's drop), since a process of the same uid could signal, ptrace or read the recall
// service. Must not own: running anything as that user.
// Holds no fds.
import { spawnSync } from "node:child_process";

export const RECALL_USER_NAME = "fanrecall";

/** Uids the recall service must never run as: root, and nobody (65534). */
export const FORBIDDEN_RECALL_UIDS: ReadonlySet<number> = new Set([0, 65534]);

export interface SystemUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** Throws unless uid may be the recall service's: not root, not nobody. */
export function checkRecallUid(uid: number, what: string): void {
  if (FORBIDDEN_RECALL_UIDS.has(uid)) {
    throw new Error(
      `${what}: uid ${uid} is ${uid === 0 ? "root" : "nobody, which other programs run as"}; ` +
        `the recall service needs a uid of its own (default: the system user '${RECALL_USER_NAME}')`,
    );
  }
}

/** The passwd entry of `name`, or null when there is none. */
export function lookupUser(name: string): SystemUser | null {
  const r = spawnSync("getent", ["passwd", name], { encoding: "utf8" });
  if (r.status === 2) return null; // "key not found"
  if (r.status !== 0) throw new Error(`getent passwd ${name} failed: ${r.stderr || r.error?.message || r.status}`);
  const fields = r.stdout.trim().split(":");
  const uid = Number(fields[2]);
  const gid = Number(fields[3]);
  if (fields[0] !== name || !Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error(`getent passwd ${name}: unexpected entry '${r.stdout.trim()}'`);
  }
  return { name, uid, gid };
}

/** The system user `name`, created (as root) when missing. */
export function ensureSystemUser(name: string = RECALL_USER_NAME): SystemUser {
  let user = lookupUser(name);
  if (user === null) {
    const r = spawnSync(
      "useradd",
      [
        "--system",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        "--user-group",
        name,
      ],
      { encoding: "utf8" },
    );
    // 9: created meanwhile by another start; the lookup below decides.
    if (r.status !== 0 && r.status !== 9) {
      throw new Error(`useradd ${name} failed: ${r.stderr.trim() || r.error?.message || r.status}`);
    }
    user = lookupUser(name);
    if (user === null) throw new Error(`useradd ${name} succeeded but getent does not find it`);
  }
  checkRecallUid(user.uid, `the user '${name}'`);
  return user;
}

/** setpriv options that run a child as uid:gid with no capabilities, no way to gain any and no supplementary groups. */
export function unprivilegedArgs(uid: number, gid: number): string[] {
  return [
    `--reuid=${uid}`,
    `--regid=${gid}`,
    "--clear-groups",
    "--no-new-privs",
    "--inh-caps=-all",
    "--bounding-set=-all",
  ];
}
