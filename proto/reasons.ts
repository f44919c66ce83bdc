// reasons: the one closed set of reasons fanrecall gives for an outcome, and the one table of
// what each means: its wire value (recall.v1 Reason), what a reader of the file is told when
// an access ends with it (allow, or deny with an errno: the failure table), and the gRPC code
// a mesh admin client sees when a request fails with it. The same name is the log field
// `reason`, the metric label `reason`, the audit record's `reason` and an admin error's reason.
// The default is fail-closed: every failure denies (EIO; EAGAIN for overload, ENOSPC for a full
// disk), because allowing an un-recalled stub hands the reader zeros instead of its data.
//
// Owns: the names and the table. Must not own: deciding which reason an outcome has (the
// listener and the recall service do), answering the kernel (native/ maps the verdict), or
// logging. The only module both halves share for this; it imports only the generated contract
// and grpc-js's status codes. Holds no fds.
import { status } from "@grpc/grpc-js";
import { Reason } from "./gen/recall/v1/recall_pb.js";

export type ReasonName =
  | "recalled"
  | "resident"
  | "populated"
  | "released"
  | "self"
  | "stub-changed"
  | "archived"
  | "verified"
  | "overloaded"
  | "no-space"
  | "no-fd"
  | "internal-error"
  | "not-writable"
  | "timeout"
  | "recall-unavailable"
  | "store-unavailable"
  | "object-missing"
  | "checksum-mismatch"
  | "write-failed"
  | "read-failed"
  | "fd-missing"
  | "protocol-error"
  | "stub-corrupt"
  | "shutdown"
  | "mismatch"
  | "invalid-path"
  | "not-found"
  | "not-permitted"
  | "busy"
  | "stored"
  | "exists"
  | "deleted"
  | "gone"
  | "denied-by-rule";

const EPERM = 1;
const EIO = 5;
const EAGAIN = 11;
const EBUSY = 16;
const ETXTBSY = 26;
const ENOSPC = 28;
const EDQUOT = 122;

/** The errnos fanotify accepts in FAN_DENY_ERRNO (any other is EINVAL). */
export const FAN_DENY_ERRNOS = [EPERM, EIO, EAGAIN, EBUSY, ETXTBSY, ENOSPC, EDQUOT] as const;
export type DenyErrno = (typeof FAN_DENY_ERRNOS)[number];

/** FAN_DENY_ERRNOS by name, for settings that name one (a recall rule's errno). */
export const DENY_ERRNO_BY_NAME: Readonly<Record<string, DenyErrno>> = {
  EPERM,
  EIO,
  EAGAIN,
  EBUSY,
  ETXTBSY,
  ENOSPC,
  EDQUOT,
};

/** What the kernel is told for an access that ends with a reason. */
export type AccessOutcome =
  { readonly verdict: "allow"; readonly errno: 0 } | { readonly verdict: "deny"; readonly errno: DenyErrno };

export interface ReasonEntry {
  /** The wire value (recall.v1 Reason). */
  readonly proto: Reason;
  /** What the reader of the file is told when an access ends with this reason. */
  readonly access: AccessOutcome;
  /** The gRPC code a mesh admin client sees when its request fails with this reason. */
  readonly grpc: status;
}

const ALLOW: AccessOutcome = { verdict: "allow", errno: 0 };
const DENY_EIO: AccessOutcome = { verdict: "deny", errno: EIO };

export const REASONS: Readonly<Record<ReasonName, ReasonEntry>> = {
  // The data is in the file: the access may go on.
  recalled: { proto: Reason.RECALLED, access: ALLOW, grpc: status.OK },
  // The data is in the file: the access may go on.
  resident: { proto: Reason.RESIDENT, access: ALLOW, grpc: status.OK },
  // The data is in the file: the access may go on.
  populated: { proto: Reason.POPULATED, access: ALLOW, grpc: status.OK },
  // An admin outcome (the file was released), never an access's answer; were it ever used
  // for one, the data would not be in the file: fail closed.
  released: { proto: Reason.RELEASED, access: DENY_EIO, grpc: status.OK },
  // Our own accesses must never wait on ourselves.
  self: { proto: Reason.SELF, access: ALLOW, grpc: status.OK },
  // The file was rewritten (O_TRUNC, or a writer the group could not see): its bytes are the
  // user's now; old archived data must never be written over them.
  "stub-changed": { proto: Reason.STUB_CHANGED, access: ALLOW, grpc: status.FAILED_PRECONDITION },
  // An admin operation's success, never an access's answer: should one ever be, fail closed.
  archived: { proto: Reason.ARCHIVED, access: DENY_EIO, grpc: status.OK },
  // An admin operation's success, never an access's answer: should one ever be, fail closed.
  verified: { proto: Reason.VERIFIED, access: DENY_EIO, grpc: status.OK },
  // Overload is temporary: EAGAIN tells well-behaved programs to retry.
  overloaded: { proto: Reason.OVERLOADED, access: { verdict: "deny", errno: EAGAIN }, grpc: status.RESOURCE_EXHAUSTED },
  // The disk is full: the recalled bytes have nowhere to go, and ENOSPC says so.
  "no-space": { proto: Reason.NO_SPACE, access: { verdict: "deny", errno: ENOSPC }, grpc: status.RESOURCE_EXHAUSTED },
  // The kernel could not open an event fd and denied the access itself (listed for counting).
  "no-fd": { proto: Reason.NO_FD, access: DENY_EIO, grpc: status.INTERNAL },
  // A fault in handling this one event: that event fails, the others go on.
  "internal-error": { proto: Reason.INTERNAL_ERROR, access: DENY_EIO, grpc: status.INTERNAL },
  // No writable fd of the file could be had through the listener's private view.
  "not-writable": { proto: Reason.NOT_WRITABLE, access: DENY_EIO, grpc: status.INTERNAL },
  // Everything below would hand the reader wrong bytes if allowed: fail closed.
  timeout: { proto: Reason.TIMEOUT, access: DENY_EIO, grpc: status.DEADLINE_EXCEEDED },
  // Fail closed: the recall service could not be reached.
  "recall-unavailable": { proto: Reason.RECALL_UNAVAILABLE, access: DENY_EIO, grpc: status.UNAVAILABLE },
  // Fail closed: the object store could not be reached.
  "store-unavailable": { proto: Reason.STORE_UNAVAILABLE, access: DENY_EIO, grpc: status.UNAVAILABLE },
  // Fail closed: the archived object is gone from the store.
  "object-missing": { proto: Reason.OBJECT_MISSING, access: DENY_EIO, grpc: status.FAILED_PRECONDITION },
  // Fail closed: the store's bytes do not match the manifest; they are never written.
  "checksum-mismatch": { proto: Reason.CHECKSUM_MISMATCH, access: DENY_EIO, grpc: status.DATA_LOSS },
  // Fail closed: the recalled bytes could not be written into the file.
  "write-failed": { proto: Reason.WRITE_FAILED, access: DENY_EIO, grpc: status.INTERNAL },
  // Fail closed: the file could not be read (archive: it shrank while being copied).
  "read-failed": { proto: Reason.READ_FAILED, access: DENY_EIO, grpc: status.INTERNAL },
  // Fail closed: the fd for the request never arrived on the fd channel.
  "fd-missing": { proto: Reason.FD_MISSING, access: DENY_EIO, grpc: status.INTERNAL },
  // Fail closed: a peer broke the contract (or sent a reason outside this set).
  "protocol-error": { proto: Reason.PROTOCOL_ERROR, access: DENY_EIO, grpc: status.INTERNAL },
  // Fail closed: the stub state cannot be read, so where the data is is unknown.
  "stub-corrupt": { proto: Reason.STUB_CORRUPT, access: DENY_EIO, grpc: status.FAILED_PRECONDITION },
  // Fail closed: the listener is stopping and will not recall this.
  shutdown: { proto: Reason.SHUTDOWN, access: DENY_EIO, grpc: status.UNAVAILABLE },
  // An admin request's failure (the archived copy differs), never an access's answer: fail closed.
  mismatch: { proto: Reason.MISMATCH, access: DENY_EIO, grpc: status.FAILED_PRECONDITION },
  // An admin request's failure, never an access's answer: fail closed should one ever be.
  "invalid-path": { proto: Reason.INVALID_PATH, access: DENY_EIO, grpc: status.INVALID_ARGUMENT },
  // An admin request's failure, never an access's answer: fail closed should one ever be.
  "not-found": { proto: Reason.NOT_FOUND, access: DENY_EIO, grpc: status.NOT_FOUND },
  // An admin request's failure, never an access's answer: fail closed should one ever be.
  "not-permitted": { proto: Reason.NOT_PERMITTED, access: DENY_EIO, grpc: status.PERMISSION_DENIED },
  // An admin request's failure (the file is open; nothing was freed), never an access's answer.
  busy: { proto: Reason.BUSY, access: DENY_EIO, grpc: status.FAILED_PRECONDITION },
  // A namespace operation's success (a record or snapshot was stored), never an access's answer.
  stored: { proto: Reason.STORED, access: DENY_EIO, grpc: status.OK },
  // A rebuild or undelete found a file already there and left it alone, never an access's answer.
  exists: { proto: Reason.EXISTS, access: DENY_EIO, grpc: status.ALREADY_EXISTS },
  // A reconcile's success (unreferenced objects past retention were deleted), never an access's answer.
  deleted: { proto: Reason.DELETED, access: DENY_EIO, grpc: status.OK },
  // An undelete's failure: no archived copy of the file is left in the store, never an access's answer.
  gone: { proto: Reason.GONE, access: DENY_EIO, grpc: status.NOT_FOUND },
  // A recall rule (--recall-rules) denies this caller: nothing is fetched. The reader gets the
  // rule's own errno (the dispatcher answers with it); EPERM, the common choice, is the default.
  "denied-by-rule": {
    proto: Reason.DENIED_BY_RULE,
    access: { verdict: "deny", errno: EPERM },
    grpc: status.PERMISSION_DENIED,
  },
};

/** Every reason name, in the table's order. */
export const REASON_NAMES = Object.keys(REASONS) as readonly ReasonName[];

const FROM_PROTO = new Map<Reason, ReasonName>(REASON_NAMES.map((name) => [REASONS[name].proto, name]));

export function isReasonName(s: string): s is ReasonName {
  return Object.hasOwn(REASONS, s);
}

export function reasonToProto(name: ReasonName): Reason {
  return REASONS[name].proto;
}

/** The name of a wire reason; an unknown or unspecified one is a protocol error. */
export function reasonFromProto(reason: Reason): ReasonName {
  return FROM_PROTO.get(reason) ?? "protocol-error";
}

export function accessOutcome(name: ReasonName): AccessOutcome {
  return REASONS[name].access;
}

export function grpcCodeOf(name: ReasonName): status {
  return REASONS[name].grpc;
}
