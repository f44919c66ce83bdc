// namespace-history: what the store says a namespace held, and when. Reads snapshots (only
// complete ones whose parts hash to their marker) and the records appended since, merges them
// into the namespace as it was last known, and plans what a reconcile may delete. Everything
// read is hostile input: bounded, checked (proto/namespace-format.ts), and a piece that fails
// its checks is reported and left out, never trusted.
//
// Owns: the merge and retention rules. Must not own: talking to the store (a NamespaceReader
// does), files, or paths on disk. Holds no fds.
import {
  MAX_PART_BYTES,
  MAX_RECORD_BYTES,
  NamespaceFormatError,
  decodeFileRecord,
  decodeSnapshotComplete,
  decodeSnapshotLine,
  encodeSnapshotComplete,
  encodeSnapshotLine,
  packParts,
  partLines,
  snapshotCompleteName,
  snapshotPartName,
  timeOfName,
} from "../proto/namespace-format.js";
import type { FileRecord, Orphan, SnapshotLine } from "../proto/namespace-format.js";
import { createHash } from "node:crypto";
import type { ListedName } from "./namespace-client.js";

/** What history needs of the store (NamespaceClient, or a fake in tests). */
export interface NamespaceReader {
  readonly namespace: string;
  list(area: "objects" | "records" | "snapshots", startAfter?: string): AsyncIterable<ListedName>;
  read(name: string, maxBytes: number): Promise<Buffer>;
}

export interface NamespaceWriter extends NamespaceReader {
  put(name: string, data: Buffer): Promise<void>;
}

export interface Snapshot {
  readonly takenAtMs: number;
  readonly files: readonly FileRecord[];
  readonly orphans: readonly Orphan[];
}

/** Records are read from a little before the snapshot: clocks of writers may differ slightly. */
const RECORD_SLACK_MS = 5 * 60_000;
const MAX_MARKER_BYTES = 1024 * 1024;

function problem(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The completion markers of the namespace's snapshots, newest first. */
export async function snapshotTimes(reader: NamespaceReader): Promise<number[]> {
  const times: number[] = [];
  for await (const o of reader.list("snapshots")) {
    const t = timeOfName(o.name);
    if (t !== null && o.name === snapshotCompleteName(t)) times.push(t);
  }
  return times.sort((a, b) => b - a);
}

/** One complete snapshot, checked part by part against its marker. */
export async function readSnapshot(reader: NamespaceReader, takenAtMs: number): Promise<Snapshot> {
  const marker = decodeSnapshotComplete(await reader.read(snapshotCompleteName(takenAtMs), MAX_MARKER_BYTES));
  if (marker.namespace !== reader.namespace || marker.takenAtMs !== takenAtMs) {
    throw new NamespaceFormatError("snapshot marker names another namespace or time");
  }
  const files: FileRecord[] = [];
  const orphans: Orphan[] = [];
  for (let i = 0; i < marker.parts.length; i++) {
    const raw = await reader.read(snapshotPartName(takenAtMs, i), MAX_PART_BYTES);
    for (const line of partLines(raw, marker.parts[i])) {
      const l = decodeSnapshotLine(line);
      if ("file" in l) files.push(l.file);
      else orphans.push(l.orphan);
    }
  }
  if (files.length !== marker.files) throw new NamespaceFormatError("snapshot holds another number of files");
  return { takenAtMs, files, orphans };
}

/**
 * The newest snapshot taken at or before `asOfMs` that passes its checks (older ones are
 * tried when a newer one fails); null when there is none. Failures go to `problems`.
 */
export async function latestSnapshot(
  reader: NamespaceReader,
  problems: string[],
  asOfMs = Number.MAX_SAFE_INTEGER,
): Promise<Snapshot | null> {
  for (const t of await snapshotTimes(reader)) {
    if (t > asOfMs) continue;
    try {
      return await readSnapshot(reader, t);
    } catch (err: unknown) {
      problems.push(`snapshot ${t}: ${problem(err)}`);
    }
  }
  return null;
}

/** The records written since `sinceMs` (and a little before), oldest first. */
export async function recordsSince(
  reader: NamespaceReader,
  sinceMs: number,
  problems: string[],
): Promise<FileRecord[]> {
  const from = Math.max(0, sinceMs - RECORD_SLACK_MS);
  const records: FileRecord[] = [];
  for await (const o of reader.list("records", `records/${String(from).padStart(15, "0")}`)) {
    try {
      records.push(decodeFileRecord((await reader.read(o.name, MAX_RECORD_BYTES)).toString("utf8")));
    } catch (err: unknown) {
      problems.push(`${o.name}: ${problem(err)}`);
    }
  }
  return records.sort((a, b) => a.recordedAtMs - b.recordedAtMs);
}

/** The object id a key ends with (the part after its last "/"). */
export function objectId(key: string): string {
  return key.slice(key.lastIndexOf("/") + 1);
}

/**
 * The namespace as last known: the snapshot's files, then every later record in time order
 * (a record moves its object to the record's path, replacing whatever was at that path).
 */
export function mergeHistory(snapshot: Snapshot | null, records: readonly FileRecord[]): Map<string, FileRecord> {
  const byPath = new Map<string, FileRecord>();
  const pathOf = new Map<string, string>();
  const place = (r: FileRecord) => {
    const id = objectId(r.key);
    const old = pathOf.get(id);
    if (old !== undefined && byPath.get(old)?.key === r.key) byPath.delete(old);
    byPath.set(r.path, r);
    pathOf.set(id, r.path);
  };
  for (const f of snapshot?.files ?? []) place(f);
  const after = snapshot?.takenAtMs ?? -1;
  for (const r of records) if (r.recordedAtMs > after) place(r);
  return byPath;
}

/** Stores a snapshot: its parts first, then the marker that makes it count. */
export async function writeSnapshot(
  writer: NamespaceWriter,
  takenAtMs: number,
  files: readonly FileRecord[],
  orphans: readonly Orphan[],
): Promise<void> {
  const lines: SnapshotLine[] = [...files.map((file) => ({ file })), ...orphans.map((orphan) => ({ orphan }))];
  const parts = packParts(lines.map(encodeSnapshotLine));
  const shas: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    await writer.put(snapshotPartName(takenAtMs, i), parts[i]);
    shas.push(createHash("sha256").update(parts[i]).digest("hex"));
  }
  const marker = { namespace: writer.namespace, takenAtMs, files: files.length, parts: shas };
  await writer.put(snapshotCompleteName(takenAtMs), encodeSnapshotComplete(marker));
}

export interface RetentionInput {
  /** Ids of every object a file of the namespace refers to now (from the walk). */
  readonly referenced: ReadonlySet<string>;
  /** The namespace's objects/ area as listed now. */
  readonly objects: readonly ListedName[];
  /** Its records/ area as listed now. */
  readonly records: readonly ListedName[];
  /** The orphans the previous reconcile saw, with the time each was first seen. */
  readonly previous: readonly Orphan[];
  readonly nowMs: number;
  readonly retainMs: number;
  /** Objects written after this (the walk's start, less a margin) are never orphans yet. */
  readonly youngerThanMs: number;
}

export interface RetentionPlan {
  /** Unreferenced data objects still within retention (carried to the next snapshot). */
  readonly orphans: Orphan[];
  /** Data objects, their manifests and records to delete now. */
  readonly deletions: string[];
  /** Ids of the data objects deleted. */
  readonly deletedIds: string[];
}

const MANIFEST = ".fanrecall-manifest.json";

/**
 * Which objects go: a data object no file refers to, unreferenced for longer than the
 * retention (counted from the first reconcile that saw it so), with its manifest and records.
 * A referenced object, or one written after the walk began, is never a candidate.
 */
export function planRetention(input: RetentionInput): RetentionPlan {
  const since = new Map(input.previous.map((o) => [o.name, o.sinceMs]));
  const orphans: Orphan[] = [];
  const deletedIds = new Set<string>();
  const dataIds = new Set<string>();
  for (const o of input.objects) {
    if (o.name.endsWith(MANIFEST)) continue;
    const id = objectId(o.name);
    dataIds.add(id);
    if (input.referenced.has(id) || o.lastModifiedMs >= input.youngerThanMs) continue;
    const first = since.get(o.name) ?? input.nowMs;
    if (input.nowMs - first >= input.retainMs) deletedIds.add(id);
    else orphans.push({ name: o.name, sinceMs: first });
  }
  const deletions: string[] = [];
  for (const o of input.objects) {
    const id = objectId(o.name.endsWith(MANIFEST) ? o.name.slice(0, -MANIFEST.length) : o.name);
    // A manifest whose data object is gone goes with it (once it is old enough).
    const stray = !dataIds.has(id) && !input.referenced.has(id) && o.lastModifiedMs < input.youngerThanMs;
    if (deletedIds.has(id) || stray) deletions.push(o.name);
  }
  for (const r of input.records) {
    const id = /^records\/\d{15}-(.+)\.json$/.exec(r.name)?.[1];
    const stray = !dataIds.has(id ?? "") && !input.referenced.has(id ?? "") && r.lastModifiedMs < input.youngerThanMs;
    if (id !== undefined && (deletedIds.has(id) || stray)) {
      deletions.push(r.name);
    }
  }
  return { orphans, deletions, deletedIds: [...deletedIds] };
}

/**
 * Snapshots that may go: older than twice the retention, never the newest. An object stays
 * for the retention after the first reconcile that found it unreferenced, and the snapshot
 * that still had its path is at most one reconcile older than that: keeping snapshots twice
 * as long keeps undelete able to place every object that is still there.
 */
export function expiredSnapshots(timesNewestFirst: readonly number[], nowMs: number, retainMs: number): number[] {
  return timesNewestFirst.slice(1).filter((t) => nowMs - t > 2 * retainMs);
}
