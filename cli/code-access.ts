// code-access: can the recall user run fanrecall's code from where it is? `fanrecall start`
// runs the recall service and the embedded store as an unprivileged user, from the same
// package as itself; a package under a directory that user cannot search (a clone in root's
// 0700 home, say) would make them die on their first import with a stack trace. Asked of
// the kernel, as that user (setpriv, no groups: as the children will run), before anything
// is started, so that start can say in one line what to do instead.
//
// Owns: one short-lived `setpriv ... test` child. Must not own: the children themselves or
// any decision about where the code is installed (scripts/install.sh). Holds no fds.
import { spawnSync } from "node:child_process";

/** Throws, in one line, when uid/gid (with no supplementary groups) cannot read every file. */
export function assertReadableBy(user: { uid: number; gid: number }, root: string, files: readonly string[]): void {
  const tests = files.flatMap((f, i) => [...(i > 0 ? ["-a"] : []), "-r", f]);
  const r = spawnSync("setpriv", [`--reuid=${user.uid}`, `--regid=${user.gid}`, "--clear-groups", "test", ...tests], {
    stdio: "ignore",
    timeout: 10_000,
  });
  if (r.error) throw new Error(`cannot check that uid ${user.uid} can read ${root}: ${r.error.message}`);
  if (r.status === 0) return;
  throw new Error(
    `the recall user (uid ${user.uid}) cannot read fanrecall's code in ${root} (a directory on the way is closed to it, as root's 0700 home is): install it where it can with 'sudo bash scripts/install.sh' (to /usr/local/lib/fanrecall, 'fanrecall' on PATH), then run 'fanrecall start' from there`,
  );
}
