// errors: the one error type of the recall service, which carries a reason of the closed set
// (proto/reasons.ts: the same names are log fields, metric labels and the wire's Reason).
//
// Owns: RecallError and the mapping from store/fs errors to reasons. Must not own: the set of
// reasons or what one means for the reader (the shared table in proto/reasons.ts). Holds no fds.
import type { ReasonName } from "../proto/index.js";

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
