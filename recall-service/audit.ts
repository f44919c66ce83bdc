// audit: the one structured record written per Recall RPC: which process caused the recall
// (pid, uid, command, cgroup, and the Kubernetes pod uid when the cgroup path names one),
// which file (dev, ino), the ranges, the bytes it fetched from the store and wrote into the
// file, duration, verdict and reason, and the recall rule that admitted the access.
//
// Owns: the record's shape (the pod uid comes from proto/accessor.ts). Must not own: logging
// configuration (main.ts sets the redaction of secrets) or anything that reads /proc (the
// listener, which sees the process, sends what it read). Holds no fds.
import { podUidFromCgroup } from "../proto/accessor.js";
import type { ReasonName, RecallRequest } from "../proto/index.js";
import { RecallMode } from "../proto/index.js";

export interface RecallOutcome {
  readonly verdict: "allow" | "deny";
  readonly reason: ReasonName;
  /** Bytes the store delivered, before the reply, to GETs this recall started (its chunks and readahead). */
  readonly bytesFetched: number;
  /** Bytes this recall wrote into the file. */
  readonly bytesWritten: number;
  readonly durationMs: number;
}

/** The audit record's fields (pino merges them into one JSON line). */
export function auditRecord(req: RecallRequest, outcome: RecallOutcome): Record<string, unknown> {
  const a = req.accessor;
  const cgroup = a?.cgroup ?? "";
  return {
    audit: "recall",
    reqId: req.requestId.toString(),
    eventPid: a?.pid ?? 0,
    uid: a?.uid ?? null,
    command: a?.command ?? "",
    cgroup,
    pod: podUidFromCgroup(cgroup),
    // The recall rule that admitted the access (listener --recall-rules); null without rules.
    rule: a?.rule ? a.rule : null,
    dev: Number(req.file?.dev ?? 0n),
    ino: Number(req.file?.ino ?? 0n),
    mode: req.mode === RecallMode.RANGE ? "range" : "whole",
    ranges: req.ranges.map((r) => [Number(r.offset), Number(r.length)]),
    bytesFetched: outcome.bytesFetched,
    bytesWritten: outcome.bytesWritten,
    durationMs: outcome.durationMs,
    verdict: outcome.verdict,
    reason: outcome.reason,
  };
}
