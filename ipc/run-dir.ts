// run-dir: where fanrecall's sockets are, the one spelling of the run directory's layout.
//   RUN_DIR/listener/admin.sock   the listener's root-only admin socket (listener/, 0700)
//   RUN_DIR/holder/holder.sock    the group holder (holder/, 0700)
//   RUN_DIR/recall/recall.sock    the recall service's gRPC server (recall/, its user's, 0750)
//   RUN_DIR/recall/fd.sock        the fd channel, served by the recall service
// RUN_DIR is /run/fanrecall unless given (`fanrecall start --state-dir DIR` uses DIR/run);
// the running `fanrecall start` instances are recorded in /run/fanrecall/instances.
// Help texts spell these with the word RUN_DIR (RUN_DIR_WORD) through the same functions.
//
// Owns: the names only. Must not import anything but node: builtins (settings/ loads it),
// create, open or check anything. Holds no fds.
import { join } from "node:path";

/** The run dir of a listener, recall service or holder started without one (systemd units). */
export const DEFAULT_RUN_DIR = "/run/fanrecall";

/** Where running `fanrecall start` instances are recorded (cli/instance-registry.ts), root's alone. */
export const INSTANCES_DIR = join(DEFAULT_RUN_DIR, "instances");

/** How help texts name the run dir: adminSocketPath(RUN_DIR_WORD) is "RUN_DIR/listener/admin.sock". */
export const RUN_DIR_WORD = "RUN_DIR";

/** The run dir `fanrecall start --state-dir DIR` uses. */
export function stateRunDir(stateDir: string): string {
  return join(stateDir, "run");
}

export function adminSocketPath(runDir: string): string {
  return join(runDir, "listener", "admin.sock");
}

export function holderSocketPath(runDir: string): string {
  return join(runDir, "holder", "holder.sock");
}

/** The recall service's directory, owned by its user: both of its sockets are in it. */
export function recallSocketDir(runDir: string): string {
  return join(runDir, "recall");
}

export function recallGrpcSocketPath(runDir: string): string {
  return join(recallSocketDir(runDir), "recall.sock");
}

export function fdChannelSocketPath(runDir: string): string {
  return join(recallSocketDir(runDir), "fd.sock");
}
