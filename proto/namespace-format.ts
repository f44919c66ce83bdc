// namespace-format: how a watched directory's namespace lives in the store, shared by the
// recall service (which writes records and serves the namespace's objects), the root listener
// (which asks for a record at release) and the root CLI (reconcile, rebuild, undelete).
//
// Layout, under the recall service's key prefix and the namespace name:
//   PREFIX/NS/objects/UUID                              the file's bytes (immutable)
//   PREFIX/NS/objects/UUID.fanrecall-manifest.json      its block hashes (manifest-format.ts)
//   PREFIX/NS/records/TIME-UUID.json                    one file record, appended at archive and release
//   PREFIX/NS/snapshots/TIME/part-NNNNN.ndjson          a snapshot of the whole namespace ...
//   PREFIX/NS/snapshots/TIME/complete.json              ... valid only once this is written (last)
// TIME is milliseconds since the epoch, zero-padded, so a listing is in time order.
//
// Every decoder here treats its input as hostile (it comes from the store, through the recall
// service): sizes bounded, every field checked, paths relative with no "..", "." or empty part.
//
// Owns: names, the record and snapshot formats and their checks. Must not own: fetching,
// storing, files. Holds no fds.
import { createHash } from "node:crypto";

/** A namespace name: lower-case letters, digits, '.', '_', '-'; 1 to 100 characters. */
const NAMESPACE = /^[a-z0-9][a-z0-9._-]{0,99}$/;
/** A name below the namespace: an area, one or two parts of safe characters. */
const NAME = /^(objects|records|snapshots)\/[A-Za-z0-9][A-Za-z0-9._-]{0,199}(\/[A-Za-z0-9][A-Za-z0-9._-]{0,199})?$/;
const HEX64 = /^[0-9a-f]{64}$/;
// eslint-disable-next-line no-control-regex
const OBJECT_NAME = /^[^\x00-\x1f\x7f]{1,1024}$/;
// eslint-disable-next-line no-control-regex
const VERSION_ID = /^[^\x00-\x1f\x7f]{0,1024}$/;
const TIME_DIGITS = 15;

/** A record or a snapshot line larger than this is refused. */
export const MAX_RECORD_BYTES = 8192;
/** A snapshot part is cut before it passes this size (and refused above it). */
export const MAX_PART_BYTES = 4 * 1024 * 1024;
/** A relative path longer than this is refused (PATH_MAX). */
export const MAX_PATH_BYTES = 4096;

export class NamespaceFormatError extends Error {
  override readonly name = "NamespaceFormatError";
}

export function isNamespaceName(s: string): boolean {
  return NAMESPACE.test(s) && !s.includes("..");
}

/** A name below a namespace that the recall service will serve (no "..", no other area). */
export function isNamespaceObjectName(s: string): boolean {
  return NAME.test(s) && !s.includes("..");
}

/**
 * The namespace a watch gets when none is given: the host name and the watch path, so it is
 * stable across restarts and across a mkfs of the disk ("node1" and "/srv/video" give
 * "node1-srv-video").
 */
export function defaultNamespace(hostName: string, watchPath: string): string {
  const raw = `${hostName}${watchPath === "/" ? "-root" : watchPath.replace(/\/+/g, "-").replace(/-$/, "")}`;
  const cleaned = raw
    .toLowerCase()
    .replace(/[^a-z0-9._-]/g, "_")
    .replace(/\.{2,}/g, "_")
    .replace(/^[^a-z0-9]+/, "");
  const name = cleaned.slice(0, 100) || "fanrecall";
  if (!isNamespaceName(name)) throw new NamespaceFormatError(`cannot derive a namespace from '${raw}'`);
  return name;
}

/** A relative path as records keep it: "/"-separated, no empty, "." or ".." part, no NUL. */
export function isRelativePath(p: string): boolean {
  if (p.length === 0 || Buffer.byteLength(p) > MAX_PATH_BYTES || p.includes("\0")) return false;
  return p.split("/").every((part) => part !== "" && part !== "." && part !== ".." && Buffer.byteLength(part) <= 255);
}

function timePart(ms: number): string {
  return String(Math.max(0, Math.floor(ms))).padStart(TIME_DIGITS, "0");
}

/** The time (ms) a record or snapshot name carries, or null when it carries none. */
export function timeOfName(name: string): number | null {
  const m = /^(?:records|snapshots)\/(\d{15})(?:-|\/|$)/.exec(name);
  return m ? Number(m[1]) : null;
}

/** The name of the record of `objectKey` written at `atMs` (its last path part is the object's id). */
export function recordName(objectKey: string, atMs: number): string {
  const id = objectKey.slice(objectKey.lastIndexOf("/") + 1);
  const name = `records/${timePart(atMs)}-${id}.json`;
  if (!isNamespaceObjectName(name)) throw new NamespaceFormatError("object id unfit for a record name");
  return name;
}

/** Where a snapshot's parts and completion marker go. */
export function snapshotDir(takenAtMs: number): string {
  return `snapshots/${timePart(takenAtMs)}`;
}

export function snapshotPartName(takenAtMs: number, index: number): string {
  return `${snapshotDir(takenAtMs)}/part-${String(index).padStart(5, "0")}.ndjson`;
}

export function snapshotCompleteName(takenAtMs: number): string {
  return `${snapshotDir(takenAtMs)}/complete.json`;
}

/** What the store knows of one archived file. */
export interface FileRecord {
  /** Path relative to the watch root. */
  readonly path: string;
  readonly size: number;
  readonly uid: number;
  readonly gid: number;
  /** Permission bits (st_mode & 0o7777). */
  readonly mode: number;
  readonly mtimeNs: bigint;
  readonly atimeNs: bigint;
  readonly bucket: string;
  readonly key: string;
  readonly versionId: string;
  readonly manifestVersionId: string;
  readonly chunkSize: number;
  readonly contentSha256: string;
  readonly manifestSha256: string;
  /** When this was recorded (ms since the epoch). */
  readonly recordedAtMs: number;
}

export function encodeFileRecord(r: FileRecord): string {
  const line = JSON.stringify({
    v: 1,
    p: r.path,
    sz: r.size,
    u: r.uid,
    g: r.gid,
    m: r.mode,
    mt: r.mtimeNs.toString(),
    at: r.atimeNs.toString(),
    b: r.bucket,
    k: r.key,
    vid: r.versionId,
    mvid: r.manifestVersionId,
    cs: r.chunkSize,
    sha: r.contentSha256,
    msha: r.manifestSha256,
    t: r.recordedAtMs,
  });
  fileRecordFrom(JSON.parse(line) as unknown);
  if (Buffer.byteLength(line) > MAX_RECORD_BYTES) throw new NamespaceFormatError("record too large");
  return line;
}

type Check<T> = (v: unknown) => v is T;
const isString: Check<string> = (v): v is string => typeof v === "string";
const isUint: Check<number> = (v): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const isDigits: Check<string> = (v): v is string => typeof v === "string" && /^\d{1,20}$/.test(v);

function field<T>(o: Record<string, unknown>, key: string, check: Check<T>, ok: (v: T) => boolean = () => true): T {
  const v = o[key];
  if (!check(v) || !ok(v)) throw new NamespaceFormatError(`record field '${key}' is invalid`);
  return v;
}

function fileRecordFrom(parsed: unknown): FileRecord {
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new NamespaceFormatError("record is not an object");
  }
  const o = parsed as Record<string, unknown>;
  field(o, "v", isUint, (v) => v === 1);
  const chunkSize = field(o, "cs", isUint, (v) => v >= 4096 && v % 4096 === 0 && v <= 1024 * 1024 * 1024);
  return {
    path: field(o, "p", isString, isRelativePath),
    size: field(o, "sz", isUint),
    uid: field(o, "u", isUint, (v) => v <= 0xfffffffe),
    gid: field(o, "g", isUint, (v) => v <= 0xfffffffe),
    mode: field(o, "m", isUint, (v) => v <= 0o7777),
    mtimeNs: BigInt(field(o, "mt", isDigits)),
    atimeNs: BigInt(field(o, "at", isDigits)),
    bucket: field(o, "b", isString, (v) => OBJECT_NAME.test(v)),
    key: field(o, "k", isString, (v) => OBJECT_NAME.test(v)),
    versionId: field(o, "vid", isString, (v) => VERSION_ID.test(v)),
    manifestVersionId: field(o, "mvid", isString, (v) => VERSION_ID.test(v)),
    chunkSize,
    contentSha256: field(o, "sha", isString, (v) => HEX64.test(v)),
    manifestSha256: field(o, "msha", isString, (v) => HEX64.test(v)),
    recordedAtMs: field(o, "t", isUint),
  };
}

function parseBounded(text: string, what: string): unknown {
  if (Buffer.byteLength(text) > MAX_RECORD_BYTES) throw new NamespaceFormatError(`${what} too large`);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new NamespaceFormatError(`${what} is not JSON`);
  }
}

/** Decodes one record (an object of records/, or a snapshot line's record). */
export function decodeFileRecord(text: string): FileRecord {
  return fileRecordFrom(parseBounded(text, "record"));
}

/** An object of the namespace that no file referred to when a reconcile looked, and since when. */
export interface Orphan {
  readonly name: string;
  readonly sinceMs: number;
}

/** One line of a snapshot part: a file, or an orphan carried to the next reconcile. */
export type SnapshotLine = { readonly file: FileRecord } | { readonly orphan: Orphan };

export function encodeSnapshotLine(l: SnapshotLine): string {
  if ("file" in l) return `{"f":${encodeFileRecord(l.file)}}`;
  if (!isNamespaceObjectName(l.orphan.name) || !isUint(l.orphan.sinceMs)) throw new NamespaceFormatError("bad orphan");
  return JSON.stringify({ o: l.orphan.name, since: l.orphan.sinceMs });
}

export function decodeSnapshotLine(text: string): SnapshotLine {
  const v = parseBounded(text, "snapshot line");
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new NamespaceFormatError("bad snapshot line");
  const o = v as Record<string, unknown>;
  if ("f" in o) return { file: fileRecordFrom(o.f) };
  const name = field(o, "o", isString, isNamespaceObjectName);
  return { orphan: { name, sinceMs: field(o, "since", isUint) } };
}

/** The completion marker: a snapshot counts only once it exists and its parts hash to what it says. */
export interface SnapshotComplete {
  readonly namespace: string;
  readonly takenAtMs: number;
  readonly files: number;
  /** sha256 of each part, in order. */
  readonly parts: readonly string[];
}

export function encodeSnapshotComplete(c: SnapshotComplete): Buffer {
  return Buffer.from(JSON.stringify({ v: 1, ns: c.namespace, t: c.takenAtMs, files: c.files, parts: c.parts }));
}

/** At most this many parts (16 GiB of snapshot at MAX_PART_BYTES: tens of millions of files). */
const MAX_PARTS = 4096;

export function decodeSnapshotComplete(raw: Uint8Array): SnapshotComplete {
  if (raw.length > 64 + MAX_PARTS * 67 + 256) throw new NamespaceFormatError("snapshot marker too large");
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(raw).toString("utf8")) as unknown;
  } catch {
    throw new NamespaceFormatError("snapshot marker is not JSON");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new NamespaceFormatError("bad snapshot marker");
  const o = v as Record<string, unknown>;
  field(o, "v", isUint, (x) => x === 1);
  const parts = o.parts;
  if (!Array.isArray(parts) || parts.length > MAX_PARTS || !parts.every((p) => isString(p) && HEX64.test(p))) {
    throw new NamespaceFormatError("bad snapshot part list");
  }
  return {
    namespace: field(o, "ns", isString, isNamespaceName),
    takenAtMs: field(o, "t", isUint),
    files: field(o, "files", isUint),
    parts: parts as string[],
  };
}

/** Splits a part into lines, refusing a part that is too large or not the bytes the marker names. */
export function partLines(raw: Uint8Array, sha256: string): string[] {
  if (raw.length > MAX_PART_BYTES) throw new NamespaceFormatError("snapshot part too large");
  if (createHash("sha256").update(raw).digest("hex") !== sha256) {
    throw new NamespaceFormatError("snapshot part differs from its marker");
  }
  return Buffer.from(raw)
    .toString("utf8")
    .split("\n")
    .filter((l) => l.length > 0);
}

/** Cuts encoded lines into parts of at most MAX_PART_BYTES. */
export function packParts(lines: Iterable<string>): Buffer[] {
  const parts: Buffer[] = [];
  let current: string[] = [];
  let bytes = 0;
  for (const line of lines) {
    const n = Buffer.byteLength(line) + 1;
    if (bytes + n > MAX_PART_BYTES && current.length > 0) {
      parts.push(Buffer.from(current.join("\n") + "\n"));
      current = [];
      bytes = 0;
    }
    current.push(line);
    bytes += n;
  }
  if (current.length > 0) parts.push(Buffer.from(current.join("\n") + "\n"));
  return parts;
}
