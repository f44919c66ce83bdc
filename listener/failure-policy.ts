// failure-policy: the listener's view of the one failure table, which says what the kernel is
// told for each outcome. The table itself, with each default justified, is REASONS in
// proto/reasons.ts (shared with the recall service, so both halves speak one set of reasons);
// every errno the listener answers an access with comes from there. Default is fail-closed: a
// reader never gets a stub's zeros. EIO for a failed recall, EAGAIN when fanrecall is
// overloaded, ENOSPC when the disk is full.
//
// Owns: nothing of its own (a view). Must not own: deciding the reason, or a second table.
// Holds no fds.
import { REASONS, REASON_NAMES, reasonFromProto } from "../proto/index.js";
import type { AccessOutcome, Reason, ReasonName } from "../proto/index.js";

/** Every reason is one the listener may answer or report with: the set is closed and shared. */
export type ListenerReason = ReasonName;

export type Outcome = AccessOutcome;

/** What the kernel is told for each reason: REASONS' access column. */
export const FAILURE_POLICY: Readonly<Record<ListenerReason, Outcome>> = Object.fromEntries(
  REASON_NAMES.map((name) => [name, REASONS[name].access]),
) as Record<ListenerReason, Outcome>;

/** Maps a reason reported by the recall service; unknown reasons are protocol errors. */
export function fromProtoReason(reason: Reason): ListenerReason {
  return reasonFromProto(reason);
}
