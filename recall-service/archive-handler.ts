// archive-handler: serves Archive and Verify. Archive reads the file through the fd the
// listener sent, uploads it (multipart when large) with its checksums in object metadata,
// and stores the chunk manifest beside it. Verify reads the stored object back and compares
// it with the file, byte for byte, so a file is released only when its copy is proven equal,
// and reads the manifest back (by version id where the store keeps versions) for the listener
// to check against the file itself.
//
// The file's bytes are read on libuv's thread pool (never a blocking read on the main
// thread, which serves every other recall).
//
// Owns: the request's fd for the duration of the call (closed in finally). Must not own:
// stub state or paths; never opens a file.
import { randomUUID } from "node:crypto";
import { createHash } from "node:crypto";
import { read } from "node:fs";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import type { Logger } from "pino";
import * as native from "../native/index.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ArchiveRequest, ArchiveResponseSchema, VerifyRequest, VerifyResponseSchema } from "../proto/index.js";
import { reasonToProto } from "../proto/index.js";
import { RecallError, errorMessage, storeErrorReason } from "./errors.js";
import type { FdInbox } from "./fd-inbox.js";
import { encodeFileRecord, isNamespaceName, isRelativePath, recordName } from "../proto/namespace-format.js";
import { ManifestBuilder, encodeManifest, manifestKey, sha256Hex } from "./manifest.js";
import type { ManifestLoader } from "./manifest-loader.js";
import type { ObjectStore } from "./object-store.js";

export interface ArchiveHandlerOptions {
  readonly inbox: FdInbox;
  readonly manifests: ManifestLoader;
  readonly store: ObjectStore;
  readonly bucket: string;
  readonly keyPrefix: string;
  readonly defaultChunkSize: number;
  readonly log: Logger;
  readonly fdWaitMs: number;
}

const READ_BYTES = 1024 * 1024;

const readAsync = promisify(read);

/** preads into all of `buf` from `position` on the thread pool; fewer bytes only at EOF. */
async function readFull(fd: number, buf: Buffer, position: number): Promise<number> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await readAsync(fd, buf, done, buf.length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/**
 * The file's first `size` bytes as a stream, read through `fd` (a file found shorter fails
 * it), and `stop`, which starts no further read and resolves once none is in flight: the fd
 * may be closed only then (a read still on the thread pool would hit whatever reuses the number).
 */
function fdReader(
  fd: number,
  size: number,
  onData: (b: Buffer) => void,
): { body: Readable; stop: () => Promise<void> } {
  let stopped = false;
  let inFlight: Promise<number> | null = null;
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let pos = 0; pos < size && !stopped;) {
      const buf = Buffer.allocUnsafe(Math.min(READ_BYTES, size - pos));
      inFlight = readFull(fd, buf, pos);
      const n = await inFlight;
      if (n === 0) throw new RecallError("read-failed", `file shrank while archiving (at ${pos} of ${size})`);
      const chunk = n === buf.length ? buf : buf.subarray(0, n);
      pos += n;
      onData(chunk);
      yield chunk;
    }
  }
  const stop = async () => {
    stopped = true;
    await inFlight?.catch(() => 0);
  };
  return { body: Readable.from(chunks(), { objectMode: false }), stop };
}

export class ArchiveHandler {
  constructor(private readonly opts: ArchiveHandlerOptions) {}

  private async withFd<T>(requestId: bigint, fn: (fd: number) => Promise<T>): Promise<T> {
    const fd = await this.opts.inbox.take(requestId, this.opts.fdWaitMs);
    if (fd === null) throw new RecallError("fd-missing", "no fd arrived for the request");
    try {
      return await fn(fd);
    } finally {
      native.close(fd);
    }
  }

  async archive(req: ArchiveRequest): Promise<MessageInitShape<typeof ArchiveResponseSchema>> {
    try {
      return await this.withFd(req.requestId, (fd) => this.archiveFd(fd, req));
    } catch (err: unknown) {
      const reason = err instanceof RecallError ? err.reason : storeErrorReason(err);
      this.opts.log.warn({ reqId: req.requestId.toString(), reason, err: errorMessage(err) }, "archive failed");
      return { requestId: req.requestId, reason: reasonToProto(reason), message: errorMessage(err) };
    }
  }

  private async archiveFd(fd: number, req: ArchiveRequest): Promise<MessageInitShape<typeof ArchiveResponseSchema>> {
    const before = native.fstat(fd);
    if (req.file && (BigInt(before.ino) !== req.file.ino || BigInt(before.dev) !== req.file.dev)) {
      throw new RecallError("protocol-error", "the fd is not the file the request names");
    }
    const chunkSize = Number(req.chunkSize) || this.opts.defaultChunkSize;
    const bucket = req.bucket || this.opts.bucket;
    const key = req.key || this.newKey(req);
    await this.opts.store.ensureBucket(bucket);
    const builder = new ManifestBuilder(chunkSize);
    const reader = fdReader(fd, before.size, (b) => builder.update(b));
    let versionId: string;
    try {
      ({ versionId } = await this.opts.store.put(bucket, key, reader.body, before.size, {
        "x-amz-meta-fanrecall-size": String(before.size),
        "x-amz-meta-fanrecall-chunk-size": String(chunkSize),
      }));
    } finally {
      await reader.stop();
    }
    const manifest = builder.finish();
    const after = native.fstat(fd);
    if (after.size !== before.size || after.mtimeNs !== before.mtimeNs || manifest.size !== before.size) {
      throw new RecallError("stub-changed", "the file changed while it was being archived");
    }
    const encoded = encodeManifest(manifest);
    const stored = await this.opts.store.put(bucket, manifestKey(key), encoded, encoded.length, {
      "x-amz-meta-fanrecall-sha256": manifest.sha256,
    });
    const object = { bucket, key, versionId, manifestVersionId: stored.versionId };
    const integrity = {
      contentSha256: manifest.sha256,
      manifestSha256: sha256Hex(encoded),
      chunkSize: BigInt(chunkSize),
    };
    if (req.namespace !== "") await this.writeRecord(req, before, { ...object, ...integrity });
    this.opts.log.info({ reqId: req.requestId.toString(), bytes: before.size, key }, "archived");
    return {
      requestId: req.requestId,
      reason: reasonToProto("archived"),
      object,
      integrity,
      size: BigInt(before.size),
    };
  }

  /** PREFIX/NAMESPACE/objects/UUID with a namespace, else the old PREFIX/UUID. */
  private newKey(req: ArchiveRequest): string {
    if (req.namespace === "") return `${this.opts.keyPrefix}${randomUUID()}`;
    if (!isNamespaceName(req.namespace)) throw new RecallError("invalid-path", "invalid namespace name");
    return `${this.opts.keyPrefix}${req.namespace}/objects/${randomUUID()}`;
  }

  /** The record of the file beside its object: what a rebuild needs to recreate its stub. */
  private async writeRecord(
    req: ArchiveRequest,
    st: native.FdStat,
    ref: { bucket: string; key: string; versionId: string; manifestVersionId: string } & {
      contentSha256: string;
      manifestSha256: string;
      chunkSize: bigint;
    },
  ): Promise<void> {
    if (!isNamespaceName(req.namespace) || !isRelativePath(req.path)) {
      throw new RecallError("invalid-path", "an archive with a namespace needs a valid relative path");
    }
    const a = req.attributes;
    const recordedAtMs = Date.now();
    const body = Buffer.from(
      encodeFileRecord({
        path: req.path,
        size: st.size,
        uid: a?.uid ?? st.uid,
        gid: a?.gid ?? st.gid,
        mode: (a?.mode ?? st.mode) & 0o7777,
        mtimeNs: st.mtimeNs,
        atimeNs: a ? BigInt(a.atimeNs) : st.atimeNs,
        ...ref,
        chunkSize: Number(ref.chunkSize),
        recordedAtMs,
      }),
    );
    const name = `${this.opts.keyPrefix}${req.namespace}/${recordName(ref.key, recordedAtMs)}`;
    await this.opts.store.put(ref.bucket, name, body, body.length, {});
  }

  async verify(req: VerifyRequest, signal: AbortSignal): Promise<MessageInitShape<typeof VerifyResponseSchema>> {
    try {
      return await this.withFd(req.requestId, (fd) => this.verifyFd(fd, req, signal));
    } catch (err: unknown) {
      const reason = err instanceof RecallError ? err.reason : storeErrorReason(err);
      return { requestId: req.requestId, equal: false, reason: reasonToProto(reason), message: errorMessage(err) };
    }
  }

  private async verifyFd(
    fd: number,
    req: VerifyRequest,
    signal: AbortSignal,
  ): Promise<MessageInitShape<typeof VerifyResponseSchema>> {
    if (!req.object || !req.integrity) throw new RecallError("protocol-error", "request lacks object or integrity");
    const size = native.fstat(fd).size;
    const stream = await this.opts.store.getStream(
      { bucket: req.object.bucket, key: req.object.key, versionId: req.object.versionId },
      signal,
    );
    const hash = createHash("sha256");
    let pos = 0;
    const local = Buffer.allocUnsafe(READ_BYTES);
    for await (const part of stream) {
      const remote = part as Buffer;
      hash.update(remote);
      for (let off = 0; off < remote.length;) {
        const want = Math.min(local.length, remote.length - off);
        const n = await readFull(fd, local.subarray(0, want), pos);
        if (n !== want || !local.subarray(0, n).equals(remote.subarray(off, off + n))) {
          return {
            requestId: req.requestId,
            equal: false,
            reason: reasonToProto("mismatch"),
            message: `differs at byte ${pos}`,
          };
        }
        off += n;
        pos += n;
      }
    }
    const equal = pos === size && hash.digest("hex") === req.integrity.contentSha256;
    if (!equal) {
      return {
        requestId: req.requestId,
        equal,
        reason: reasonToProto("mismatch"),
        message: "size or checksum differs",
      };
    }
    const { raw } = await this.opts.manifests.readBack(
      { bucket: req.object.bucket, key: req.object.key, manifestVersionId: req.object.manifestVersionId },
      req.integrity,
      size,
      signal,
    );
    return { requestId: req.requestId, equal, reason: reasonToProto("verified"), message: "", manifest: raw };
  }
}
