// errors: the closed set of failure reasons of the recall service, and the one error type
// that carries them. The same reason names are log fields and metric labels.
//
// Owns: RecallError and the mapping from store/fs errors to reasons. Must not own: what a
// reason means for the reader (the listener's failure policy decides). Holds no fds.
import { Reason } from "../proto/index.js";

export type ReasonName =
  | "recalled"
  | "archived"
  | "verified"
  | "timeout"
  | "store-unavailable"
  | "object-missing"
  | "checksum-mismatch"
  | "write-failed"
  | "no-space"
  | "fd-missing"
  | "protocol-error"
  | "overloaded"
  | "stub-changed"
  | "read-failed"
  | "mismatch";

const TO_PROTO: Record<ReasonName, Reason> = {
  recalled: Reason.RECALLED,
  archived: Reason.ARCHIVED,
  verified: Reason.VERIFIED,
  timeout: Reason.TIMEOUT,
  "store-unavailable": Reason.STORE_UNAVAILABLE,
  "object-missing": Reason.OBJECT_MISSING,
  "checksum-mismatch": Reason.CHECKSUM_MISMATCH,
  "write-failed": Reason.WRITE_FAILED,
  "no-space": Reason.NO_SPACE,
  "fd-missing": Reason.FD_MISSING,
  "protocol-error": Reason.PROTOCOL_ERROR,
  overloaded: Reason.OVERLOADED,
  "stub-changed": Reason.STUB_CHANGED,
  "read-failed": Reason.READ_FAILED,
  mismatch: Reason.MISMATCH,
};

export function reasonToProto(reason: ReasonName): Reason {
  return TO_PROTO[reason];
}

/** A failure with a reason from the closed set. */
export class RecallError extends Error {
  override readonly name = "RecallError";
  constructor(
    readonly reason: ReasonName,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function errCode(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const code = err.code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}

/** Maps an object-store client error to a reason. */
export function storeErrorReason(err: unknown): ReasonName {
  if (err instanceof RecallError) return err.reason;
  const code = errCode(err);
  if (code === "NoSuchKey" || code === "NotFound" || code === "NoSuchBucket" || code === "NoSuchVersion") {
    return "object-missing";
  }
  if (code === "ABORT_ERR" || (err instanceof Error && err.name === "AbortError")) return "timeout";
  return "store-unavailable";
}

/** Maps a local write error (through the fd) to a reason. */
export function writeErrorReason(err: unknown): ReasonName {
  const code = errCode(err);
  if (code === "ENOSPC" || code === "EDQUOT") return "no-space";
  return "write-failed";
}

/** The errno a reader sees for a reason, when the recall fails. */
export function errnoFor(reason: ReasonName): number {
  switch (reason) {
    case "overloaded":
      return 11; // EAGAIN
    case "no-space":
      return 28; // ENOSPC
    default:
      return 5; // EIO
  }
}
