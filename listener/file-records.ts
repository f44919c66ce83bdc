// file-records: the two conversions between a file's trusted stub state and the record the
// store keeps of it: a record from a stub and the file's attributes (release's record,
// reconcile's snapshot), and the released stub state a record gives a recreated file
// (rebuild, undelete).
//
// Owns: those mappings. Must not own: either format (listener/stub-state.ts,
// proto/namespace-format.ts). Holds no fds.
import type { FdStat } from "../native/index.js";
import type { FileRecord } from "../proto/namespace-format.js";
import { STUB_XATTR_VERSION, encodeStubState } from "./stub-state.js";
import type { StubState } from "./stub-state.js";

/** The record of an archived file at `path` (relative to its watch root), as it is now. */
export function recordOf(
  path: string,
  st: Pick<FdStat, "uid" | "gid" | "mode" | "atimeNs">,
  s: StubState,
  nowMs: number,
): FileRecord {
  return {
    path,
    size: s.size,
    uid: st.uid,
    gid: st.gid,
    mode: st.mode & 0o7777,
    mtimeNs: s.mtimeNs,
    atimeNs: st.atimeNs,
    bucket: s.bucket,
    key: s.key,
    versionId: s.versionId,
    manifestVersionId: s.manifestVersionId,
    chunkSize: s.chunkSize,
    contentSha256: s.contentSha256,
    manifestSha256: s.manifestSha256,
    recordedAtMs: nowMs,
  };
}

/** The encoded stub state of a released stub of `r` (checked as the xattr's decoder checks it). */
export function stubStateOf(r: FileRecord): string {
  return encodeStubState({
    version: STUB_XATTR_VERSION,
    state: "released",
    bucket: r.bucket,
    key: r.key,
    versionId: r.versionId,
    manifestVersionId: r.manifestVersionId,
    size: r.size,
    mtimeNs: r.mtimeNs,
    atimeNs: r.atimeNs,
    chunkSize: r.chunkSize,
    contentSha256: r.contentSha256,
    manifestSha256: r.manifestSha256,
  }).toString("utf8");
}
