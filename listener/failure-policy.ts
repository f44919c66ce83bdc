// failure-policy: the one table that says what the kernel is told for each outcome.
// Default is fail-closed: a reader never gets a stub's zeros. EIO for a failed recall,
// EAGAIN when fanrecall is overloaded, ENOSPC when the disk is full.
//
// Owns: the Reason -> response mapping. Must not own: deciding the reason. Holds no fds.
import { Reason } from "../proto/index.js";

export type ListenerReason =
  | "recalled"
  | "resident"
  | "self"
  | "populated"
  | "stub-changed"
  | "overloaded"
  | "no-fd"
  | "internal-error"
  | "not-writable"
  | "timeout"
  | "recall-unavailable"
  | "store-unavailable"
  | "object-missing"
  | "checksum-mismatch"
  | "write-failed"
  | "no-space"
  | "fd-missing"
  | "protocol-error"
  | "stub-corrupt"
  | "shutdown"
  | "released";

export interface Outcome {
  readonly verdict: "allow" | "deny";
  /** errno for deny (EIO 5, EAGAIN 11, ENOSPC 28). */
  readonly errno: number;
}

const EIO = 5;
const EAGAIN = 11;
const ENOSPC = 28;

export const FAILURE_POLICY: Record<ListenerReason, Outcome> = {
  // The data is in the file: the access may go on.
  recalled: { verdict: "allow", errno: 0 },
  resident: { verdict: "allow", errno: 0 },
  populated: { verdict: "allow", errno: 0 },
  released: { verdict: "allow", errno: 0 },
  // Our own accesses must never wait on ourselves.
  self: { verdict: "allow", errno: 0 },
  // The file was rewritten (O_TRUNC, or a writer the group could not see): its bytes are
  // the user's now; old archived data must never be written over them.
  "stub-changed": { verdict: "allow", errno: 0 },
  // Overload is temporary: EAGAIN tells well-behaved programs to retry.
  overloaded: { verdict: "deny", errno: EAGAIN },
  // The kernel could not open an event fd and denied the access itself (listed for counting).
  "no-fd": { verdict: "deny", errno: EIO },
  // A fault in handling this one event: that event fails, the others go on.
  "internal-error": { verdict: "deny", errno: EIO },
  // No writable fd of the file could be had through the listener's private view.
  "not-writable": { verdict: "deny", errno: EIO },
  // Everything else would hand the reader wrong bytes if allowed: fail closed.
  timeout: { verdict: "deny", errno: EIO },
  "recall-unavailable": { verdict: "deny", errno: EIO },
  "store-unavailable": { verdict: "deny", errno: EIO },
  "object-missing": { verdict: "deny", errno: EIO },
  "checksum-mismatch": { verdict: "deny", errno: EIO },
  "write-failed": { verdict: "deny", errno: EIO },
  "no-space": { verdict: "deny", errno: ENOSPC },
  "fd-missing": { verdict: "deny", errno: EIO },
  "protocol-error": { verdict: "deny", errno: EIO },
  "stub-corrupt": { verdict: "deny", errno: EIO },
  shutdown: { verdict: "deny", errno: EIO },
};

const FROM_PROTO = new Map<Reason, ListenerReason>([
  [Reason.RECALLED, "recalled"],
  [Reason.TIMEOUT, "timeout"],
  [Reason.STORE_UNAVAILABLE, "store-unavailable"],
  [Reason.OBJECT_MISSING, "object-missing"],
  [Reason.CHECKSUM_MISMATCH, "checksum-mismatch"],
  [Reason.WRITE_FAILED, "write-failed"],
  [Reason.NO_SPACE, "no-space"],
  [Reason.FD_MISSING, "fd-missing"],
  [Reason.PROTOCOL_ERROR, "protocol-error"],
  [Reason.OVERLOADED, "overloaded"],
  [Reason.STUB_CHANGED, "stub-changed"],
]);

/** Maps a reason reported by the recall service; unknown reasons are protocol errors. */
export function fromProtoReason(reason: Reason): ListenerReason {
  return FROM_PROTO.get(reason) ?? "protocol-error";
}
