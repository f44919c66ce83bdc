// object-store: the narrow interface the recall service needs from S3-compatible storage.
// Implemented by minio-store.ts; every call honours an AbortSignal so a recall deadline
// stops network work too.
//
// Owns: the shape of the store API. Must not own: credentials handling, retries, or
// anything about files. Holds no fds.
import type { Readable } from "node:stream";

export interface ObjectLocation {
  readonly bucket: string;
  readonly key: string;
  /** Empty where the store keeps no versions. */
  readonly versionId: string;
}

export interface ObjectStore {
  /** Reads [offset, offset + length) of an object into memory. */
  getRange(loc: ObjectLocation, offset: number, length: number, signal: AbortSignal): Promise<Buffer>;
  /** Streams [offset, offset + length) of an object (one ranged GET); `signal` destroys the stream. */
  getRangeStream(loc: ObjectLocation, offset: number, length: number, signal: AbortSignal): Promise<Readable>;
  /** Streams a whole object. */
  getStream(loc: ObjectLocation, signal: AbortSignal): Promise<Readable>;
  /** Uploads a stream of known size (multipart when large); returns the version id, if any. */
  put(
    bucket: string,
    key: string,
    body: Readable | Buffer,
    size: number,
    metadata: Record<string, string>,
  ): Promise<{ versionId: string }>;
  /** Returns the object's size, or null when it does not exist. */
  stat(loc: ObjectLocation, signal: AbortSignal): Promise<{ size: number } | null>;
  /** Resolves when the store answers a request about `bucket` (existing or not) in time. */
  ping(bucket: string, signal: AbortSignal): Promise<void>;
  /** Creates the bucket when it does not exist. */
  ensureBucket(bucket: string): Promise<void>;
  /** Up to `maxKeys` objects whose keys start with `prefix` and sort after `startAfter`, in key order. */
  list(bucket: string, prefix: string, startAfter: string, maxKeys: number, signal: AbortSignal): Promise<ListPage>;
  /** Deletes the objects (one already gone counts as deleted). */
  remove(bucket: string, keys: readonly string[]): Promise<void>;
}

export interface ListedObject {
  readonly key: string;
  readonly size: number;
  readonly lastModifiedMs: number;
}

export interface ListPage {
  readonly objects: readonly ListedObject[];
  /** More objects follow the last one. */
  readonly truncated: boolean;
}
