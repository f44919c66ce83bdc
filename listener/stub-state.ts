// stub-state: the persistent truth about a file, kept in the `trusted.fanrecall` xattr
// (readable and writable by root only, so unprivileged users can neither forge nor read it).
//
// Owns: the encoding, decoding and validation of that xattr. Must not own: reading or
// writing it (stub-store.ts does, on an fd its caller holds), or any policy about what a
// state means for an access. Holds no fds.

export const STUB_XATTR = "trusted.fanrecall";
export const STUB_XATTR_VERSION = 1;
const MAX_XATTR_BYTES = 3072;

/**
 * archived: a verified copy exists, the data is local.
 * released: a stub; the data lives only in the store.
 * partial: released, some chunks recalled.
 * dirty: changed since it was archived; the archived copy is kept but never written back.
 * (A file without the xattr is `resident`.)
 */
export type StoredState = "archived" | "released" | "partial" | "dirty";
export type FileState = StoredState | "resident";

export interface StubState {
  readonly version: number;
  readonly state: StoredState;
  readonly bucket: string;
  readonly key: string;
  readonly versionId: string;
  /** Version of the manifest object ("" where the store keeps none, or archived before it was kept). */
  readonly manifestVersionId: string;
  /** Size of the file when it was archived (and so the size a stub must keep). */
  readonly size: number;
  /** mtime (ns since the epoch) when archived; restored after every recall write. */
  readonly mtimeNs: bigint;
  /** atime (ns) when released, restored with mtime. */
  readonly atimeNs: bigint;
  readonly chunkSize: number;
  readonly contentSha256: string;
  readonly manifestSha256: string;
}

const STATES: readonly StoredState[] = ["archived", "released", "partial", "dirty"];
const HEX64 = /^[0-9a-f]{64}$/;
const MAX_CHUNK = 1024 * 1024 * 1024;
/** A bucket or key: 1 to 1024 characters, no control characters. */
// eslint-disable-next-line no-control-regex
const OBJECT_NAME = /^[^\x00-\x1f\x7f]{1,1024}$/;
/** A version id: empty (no versions) or up to 1024 characters, no control characters. */
// eslint-disable-next-line no-control-regex
const VERSION_ID = /^[^\x00-\x1f\x7f]{0,1024}$/;

/**
 * Encodes a stub state for the xattr. What decode would refuse is refused here too (the
 * same checks, by decoding the result): no writer, whatever fed it (an archive result from
 * the recall service, say), can leave a state that makes the file unreadable for everyone.
 */
export function encodeStubState(s: StubState): Buffer {
  const json = JSON.stringify({
    v: s.version,
    st: s.state,
    b: s.bucket,
    k: s.key,
    vid: s.versionId,
    mvid: s.manifestVersionId,
    sz: s.size,
    mt: s.mtimeNs.toString(),
    at: s.atimeNs.toString(),
    cs: s.chunkSize,
    sha: s.contentSha256,
    msha: s.manifestSha256,
  });
  const buf = Buffer.from(json, "utf8");
  if (buf.length > MAX_XATTR_BYTES) throw new StubStateError(`stub state too large (${buf.length} bytes)`);
  decodeStubState(buf);
  return buf;
}

/** Thrown when the xattr is present but not a valid stub state. */
export class StubStateError extends Error {
  override readonly name = "StubStateError";
}

function field<T>(o: Record<string, unknown>, key: string, check: (v: unknown) => v is T): T {
  const v = o[key];
  if (!check(v)) throw new StubStateError(`stub state field '${key}' is invalid`);
  return v;
}

const isString = (v: unknown): v is string => typeof v === "string";
const isNonNegInt = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const isDigits = (v: unknown): v is string => typeof v === "string" && /^\d{1,20}$/.test(v);

/** Decodes and validates the xattr; throws StubStateError when it is malformed. */
export function decodeStubState(raw: Uint8Array): StubState {
  if (raw.length > MAX_XATTR_BYTES) throw new StubStateError("stub state too large");
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(raw).toString("utf8"));
  } catch {
    throw new StubStateError("stub state is not JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new StubStateError("not an object");
  const o = parsed as Record<string, unknown>;
  const version = field(o, "v", isNonNegInt);
  if (version !== STUB_XATTR_VERSION) throw new StubStateError(`unsupported stub state version ${version}`);
  const state = field(o, "st", isString);
  if (!STATES.includes(state as StoredState)) throw new StubStateError(`unknown state '${state}'`);
  const chunkSize = field(o, "cs", isNonNegInt);
  if (chunkSize < 4096 || chunkSize > MAX_CHUNK || chunkSize % 4096 !== 0)
    throw new StubStateError("chunk size must be a multiple of 4096 from 4 KiB to 1 GiB");
  const contentSha256 = field(o, "sha", isString);
  const manifestSha256 = field(o, "msha", isString);
  if (!HEX64.test(contentSha256) || !HEX64.test(manifestSha256)) throw new StubStateError("bad checksum");
  const bucket = field(o, "b", isString);
  const key = field(o, "k", isString);
  if (!OBJECT_NAME.test(bucket) || !OBJECT_NAME.test(key)) throw new StubStateError("malformed object reference");
  const versionId = field(o, "vid", isString);
  // Absent in states written before the manifest's version was kept.
  const manifestVersionId = o.mvid === undefined ? "" : field(o, "mvid", isString);
  if (!VERSION_ID.test(versionId) || !VERSION_ID.test(manifestVersionId))
    throw new StubStateError("malformed version id");
  return {
    version,
    state: state as StoredState,
    bucket,
    key,
    versionId,
    manifestVersionId,
    size: field(o, "sz", isNonNegInt),
    mtimeNs: BigInt(field(o, "mt", isDigits)),
    atimeNs: BigInt(field(o, "at", isDigits)),
    chunkSize,
    contentSha256,
    manifestSha256,
  };
}

/** True when accesses to a file in this state need a recall first. */
export function needsRecall(state: StoredState): boolean {
  return state === "released" || state === "partial";
}

/** Returns a copy with a new state. */
export function withState(s: StubState, state: StoredState): StubState {
  return { ...s, state };
}
