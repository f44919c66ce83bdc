// memory-store: an in-memory ObjectStore for unit tests of the recall service, with the
// store's error shapes (codes NoSuchKey / NoSuchVersion, as minio-js reports them) and fault
// hooks: fail the next GETs, corrupt stored bytes, delay every GET, split streams into small
// parts (so per-block verification sees bytes arrive piecemeal). It records every GET.
//
// Owns: the objects (Buffers) and their versions. Holds no fds, opens no sockets.
import { Readable } from "node:stream";
import { ManifestBuilder, encodeManifest, manifestKey, sha256Hex } from "../../recall-service/manifest.js";
import type { ListPage, ObjectLocation, ObjectStore } from "../../recall-service/object-store.js";

interface StoredVersion {
  readonly versionId: string;
  data: Buffer;
  readonly metadata: Record<string, string>;
}

export interface MemoryStoreOptions {
  /** Give each put a version id ("v1", "v2", ...), as a versioned bucket does. Default false. */
  readonly versioned?: boolean;
  /** Size of the parts a GET stream delivers. Default 64 KiB. */
  readonly partBytes?: number;
}

export interface GetRecord {
  readonly key: string;
  readonly versionId: string;
  readonly offset: number;
  /** -1 for a whole-object GET. */
  readonly length: number;
}

function storeError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

export class MemoryStore implements ObjectStore {
  private readonly objects = new Map<string, StoredVersion[]>();
  private readonly buckets = new Set<string>();
  /** When each key was last put (ms), for listings. */
  private readonly modified = new Map<string, number>();
  /** The clock puts are stamped with (tests move it). */
  now: () => number = () => Date.now();
  private nextVersion = 1;
  private failures: Array<{ err: Error; key: string | null }> = [];
  /** Every GET (ranged or whole), in order; manifest GETs included. */
  readonly gets: GetRecord[] = [];
  /** Delay before each GET answers (honours its signal). */
  delayMs = 0;
  private hold: { after: number; open: Promise<void> } | null = null;

  constructor(private readonly opts: MemoryStoreOptions = {}) {}

  /**
   * The next `count` GETs (of `key` only, when given) reject with `err` (a transient store
   * error by default).
   */
  failNextGet(count = 1, opts: { key?: string; err?: Error } = {}): void {
    const err = opts.err ?? storeError("ServiceUnavailable", "injected store failure");
    for (let i = 0; i < count; i++) this.failures.push({ err, key: opts.key ?? null });
  }

  /**
   * GET streams started from now on deliver their first `bytes` bytes and then wait until the
   * returned function is called (a slow network mid-body).
   */
  holdStreamsAfter(bytes: number): () => void {
    let release = () => {};
    const open = new Promise<void>((r) => (release = r));
    this.hold = { after: bytes, open };
    return () => {
      this.hold = null;
      release();
    };
  }

  /** Flips the bits of the stored byte at `offset` of the latest (or the named) version. */
  corrupt(bucket: string, key: string, offset: number, versionId = ""): void {
    const v = this.version({ bucket, key, versionId });
    v.data[offset] ^= 0xff;
  }

  /** The stored bytes of the latest (or the named) version. */
  bytes(bucket: string, key: string, versionId = ""): Buffer {
    return this.version({ bucket, key, versionId }).data;
  }

  metadata(bucket: string, key: string, versionId = ""): Record<string, string> {
    return this.version({ bucket, key, versionId }).metadata;
  }

  /** The version ids of a key, oldest first. */
  versions(bucket: string, key: string): string[] {
    return (this.objects.get(`${bucket}\u0000${key}`) ?? []).map((v) => v.versionId);
  }

  hasBucket(bucket: string): boolean {
    return this.buckets.has(bucket);
  }

  private version(loc: ObjectLocation): StoredVersion {
    const all = this.objects.get(`${loc.bucket}\u0000${loc.key}`);
    if (!all || all.length === 0) throw storeError("NoSuchKey", `no object ${loc.key}`);
    if (loc.versionId === "") return all[all.length - 1];
    const v = all.find((x) => x.versionId === loc.versionId);
    if (!v) throw storeError("NoSuchVersion", `no version ${loc.versionId} of ${loc.key}`);
    return v;
  }

  /** Applies the fault hooks of one GET; returns the version it reads. */
  private async beginGet(loc: ObjectLocation, offset: number, length: number, signal: AbortSignal) {
    this.gets.push({ key: loc.key, versionId: loc.versionId, offset, length });
    if (this.delayMs > 0) await abortableSleep(this.delayMs, signal);
    signal.throwIfAborted();
    const i = this.failures.findIndex((f) => f.key === null || f.key === loc.key);
    if (i >= 0) throw this.failures.splice(i, 1)[0].err;
    return this.version(loc);
  }

  private streamOf(data: Buffer, signal: AbortSignal): Readable {
    const part = this.opts.partBytes ?? 64 * 1024;
    const parts: Buffer[] = [];
    // Copies, as a network client delivers fresh buffers (a later corrupt() must not reach them).
    const hold = this.hold;
    for (let at = 0; at < data.length;) {
      let end = Math.min(data.length, at + part);
      // A hold splits the part it falls in, so exactly `after` bytes come first.
      if (hold && at < hold.after && end > hold.after) end = hold.after;
      parts.push(Buffer.from(data.subarray(at, end)));
      at = end;
    }
    async function* deliver() {
      let sent = 0;
      for (const p of parts) {
        if (hold && sent >= hold.after) await hold.open;
        sent += p.length;
        yield p;
      }
    }
    const stream = Readable.from(deliver(), { objectMode: false });
    const onAbort = () => stream.destroy(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
    signal.addEventListener("abort", onAbort, { once: true });
    stream.once("close", () => signal.removeEventListener("abort", onAbort));
    return stream;
  }

  async getRange(loc: ObjectLocation, offset: number, length: number, signal: AbortSignal): Promise<Buffer> {
    const v = await this.beginGet(loc, offset, length, signal);
    return Buffer.from(v.data.subarray(offset, offset + length));
  }

  async getRangeStream(loc: ObjectLocation, offset: number, length: number, signal: AbortSignal): Promise<Readable> {
    const v = await this.beginGet(loc, offset, length, signal);
    return this.streamOf(v.data.subarray(offset, offset + length), signal);
  }

  async getStream(loc: ObjectLocation, signal: AbortSignal): Promise<Readable> {
    const v = await this.beginGet(loc, 0, -1, signal);
    return this.streamOf(v.data, signal);
  }

  async put(
    bucket: string,
    key: string,
    body: Readable | Buffer,
    size: number,
    metadata: Record<string, string>,
  ): Promise<{ versionId: string }> {
    if (!this.buckets.has(bucket)) throw storeError("NoSuchBucket", `no bucket ${bucket}`);
    let data: Buffer;
    if (Buffer.isBuffer(body)) data = Buffer.from(body);
    else {
      const parts: Buffer[] = [];
      for await (const p of body) parts.push(p as Buffer);
      data = Buffer.concat(parts);
    }
    if (data.length !== size) throw new Error(`put of ${key}: ${data.length} bytes, ${size} announced`);
    const versionId = this.opts.versioned ? `v${this.nextVersion++}` : "";
    const id = `${bucket}\u0000${key}`;
    const all = this.opts.versioned ? (this.objects.get(id) ?? []) : [];
    all.push({ versionId, data, metadata: { ...metadata } });
    this.objects.set(id, all);
    this.modified.set(id, this.now());
    return { versionId };
  }

  async stat(loc: ObjectLocation, signal: AbortSignal): Promise<{ size: number } | null> {
    signal.throwIfAborted();
    try {
      return { size: this.version(loc).data.length };
    } catch {
      return null;
    }
  }

  async ping(_bucket: string, signal: AbortSignal): Promise<void> {
    if (this.delayMs > 0) await abortableSleep(this.delayMs, signal);
  }

  async ensureBucket(bucket: string): Promise<void> {
    this.buckets.add(bucket);
  }

  async list(
    bucket: string,
    prefix: string,
    startAfter: string,
    maxKeys: number,
    signal: AbortSignal,
  ): Promise<ListPage> {
    signal.throwIfAborted();
    const keys = [...this.objects.keys()]
      .filter((id) => id.startsWith(`${bucket}\u0000`))
      .map((id) => id.slice(bucket.length + 1))
      .filter((k) => k.startsWith(prefix) && k > startAfter)
      .sort();
    const page = keys.slice(0, maxKeys).map((key) => {
      const all = this.objects.get(`${bucket}\u0000${key}`)!;
      const v = all[all.length - 1];
      return { key, size: v.data.length, lastModifiedMs: this.modified.get(`${bucket}\u0000${key}`) ?? 0 };
    });
    return { objects: page, truncated: keys.length > maxKeys };
  }

  async remove(bucket: string, keys: readonly string[]): Promise<void> {
    for (const k of keys) {
      this.objects.delete(`${bucket}\u0000${k}`);
      this.modified.delete(`${bucket}\u0000${k}`);
    }
  }
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** What an archive leaves in the store and the stub state: enough to build a recall request. */
export interface Archived {
  readonly object: { bucket: string; key: string; versionId: string; manifestVersionId: string };
  readonly integrity: { contentSha256: string; manifestSha256: string; chunkSize: bigint };
  /** The manifest object's bytes as stored. */
  readonly manifest: Buffer;
}

/** Stores `data` and its version 2 manifest the way archive-handler.ts does (without an fd). */
export async function archiveBytes(
  store: MemoryStore,
  loc: { bucket: string; key: string },
  data: Buffer,
  chunkSize: number,
): Promise<Archived> {
  await store.ensureBucket(loc.bucket);
  const builder = new ManifestBuilder(chunkSize);
  builder.update(data);
  const manifest = encodeManifest(builder.finish());
  const { versionId } = await store.put(loc.bucket, loc.key, data, data.length, {});
  const stored = await store.put(loc.bucket, manifestKey(loc.key), manifest, manifest.length, {});
  return {
    object: { bucket: loc.bucket, key: loc.key, versionId, manifestVersionId: stored.versionId },
    integrity: { contentSha256: sha256Hex(data), manifestSha256: sha256Hex(manifest), chunkSize: BigInt(chunkSize) },
    manifest,
  };
}
