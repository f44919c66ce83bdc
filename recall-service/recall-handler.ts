// recall-handler: serves one Recall RPC. It takes the fd the listener sent for the request,
// works out which chunks the access needs and which are missing, fetches them (verified,
// shared, with readahead), writes them through the fd, fdatasyncs and answers the verdict.
//
// Owns: the fd of the request for the duration of the call (closed in finally). Must not
// own: the stub state (the listener keeps it) or any path. Never opens a file.
import type { Logger } from "pino";
import * as native from "../native/index.js";
import type { RecallRequest } from "../proto/index.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { RecallResponseSchema } from "../proto/index.js";
import { RecallMode, Verdict } from "../proto/index.js";
import type { ChunkCache, ChunkRef } from "./chunk-cache.js";
import { RecallError, errnoFor, errorMessage, reasonToProto, writeErrorReason } from "./errors.js";
import type { ReasonName } from "./errors.js";
import type { FdInbox } from "./fd-inbox.js";
import type { ManifestLoader } from "./manifest-loader.js";
import type { Manifest } from "./manifest.js";
import type { ObjectLocation } from "./object-store.js";
import { isPopulated } from "./populated.js";

export interface RecallHandlerOptions {
  readonly inbox: FdInbox;
  readonly chunks: ChunkCache;
  readonly manifests: ManifestLoader;
  readonly log: Logger;
  /** Chunks fetched ahead of a ranged read, kept in memory until needed. */
  readonly readaheadChunks: number;
  /** Parallel chunk fetches within one recall. */
  readonly parallelFetches: number;
  readonly fdWaitMs: number;
}

type Reply = MessageInitShape<typeof RecallResponseSchema>;

function chunksFor(req: RecallRequest, m: Manifest): number[] {
  const total = Math.ceil(m.size / m.chunkSize);
  if (req.mode !== RecallMode.RANGE) return Array.from({ length: total }, (_, i) => i);
  const wanted = new Set<number>();
  for (const r of req.ranges) {
    const start = Number(r.offset);
    const end = Math.min(m.size, start + Number(r.length));
    if (end <= start) continue;
    for (let i = Math.floor(start / m.chunkSize); i * m.chunkSize < end; i++) wanted.add(i);
  }
  return [...wanted].sort((a, b) => a - b);
}

async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export class RecallHandler {
  constructor(private readonly opts: RecallHandlerOptions) {}

  async handle(req: RecallRequest, signal: AbortSignal): Promise<Reply> {
    const started = Date.now();
    const fd = await this.opts.inbox.take(req.requestId, this.opts.fdWaitMs);
    if (fd === null) return this.deny(req, "fd-missing");
    const log = this.opts.log.child({ reqId: req.requestId.toString() });
    try {
      const reply = await this.recallThrough(fd, req, signal);
      log.debug(
        { reason: "recalled", durationMs: Date.now() - started, bytes: Number(reply.bytesWritten) },
        "recall done",
      );
      return reply;
    } catch (err: unknown) {
      const reason: ReasonName = err instanceof RecallError ? err.reason : "write-failed";
      log.warn({ reason, err: errorMessage(err), durationMs: Date.now() - started }, "recall failed");
      return this.deny(req, reason);
    } finally {
      native.close(fd);
    }
  }

  private deny(req: RecallRequest, reason: ReasonName): Reply {
    return { requestId: req.requestId, verdict: Verdict.DENY, errno: errnoFor(reason), reason: reasonToProto(reason) };
  }

  private async recallThrough(fd: number, req: RecallRequest, signal: AbortSignal): Promise<Reply> {
    const file = req.file;
    const integrity = req.integrity;
    const object = req.object;
    if (!file || !integrity || !object)
      throw new RecallError("protocol-error", "request lacks file, object or integrity");
    const st = native.fstat(fd);
    if (BigInt(st.dev) !== file.dev || BigInt(st.ino) !== file.ino) {
      throw new RecallError("protocol-error", "the fd is not the file the request names");
    }
    if (BigInt(st.size) !== file.size) throw new RecallError("stub-changed", "file size changed since release");
    const size = st.size;
    const loc: ObjectLocation = { bucket: object.bucket, key: object.key, versionId: object.versionId };
    const manifest = await this.opts.manifests.get(loc, integrity, size, signal);
    const wanted = chunksFor(req, manifest);
    const missing = wanted.filter((i) => !isPopulated(fd, i * manifest.chunkSize, this.chunkLength(manifest, i)));
    if (req.mode === RecallMode.RANGE && wanted.length > 0)
      this.readahead(fd, loc, manifest, wanted[wanted.length - 1]);
    let written = 0;
    await forEachLimited(missing, this.opts.parallelFetches, async (index) => {
      const data = await this.opts.chunks.get({ loc, manifest, index }, signal);
      if (signal.aborted) throw new RecallError("timeout", "recall deadline passed");
      try {
        native.pwrite(fd, data, index * manifest.chunkSize);
      } catch (err: unknown) {
        throw new RecallError(writeErrorReason(err), `write failed: ${errorMessage(err)}`, { cause: err });
      }
      written += data.length;
    });
    try {
      if (written > 0) native.fdatasync(fd);
    } catch (err: unknown) {
      throw new RecallError(writeErrorReason(err), `fdatasync failed: ${errorMessage(err)}`, { cause: err });
    }
    const populated = native.dataBytes(fd, size);
    return {
      requestId: req.requestId,
      verdict: Verdict.ALLOW,
      reason: reasonToProto("recalled"),
      bytesFetched: BigInt(written),
      bytesWritten: BigInt(written),
      populatedBytes: BigInt(populated),
      fullyPopulated: populated >= size,
    };
  }

  private chunkLength(m: Manifest, index: number): number {
    return Math.min(m.chunkSize, m.size - index * m.chunkSize);
  }

  private readahead(fd: number, loc: ObjectLocation, manifest: Manifest, last: number): void {
    const total = Math.ceil(manifest.size / manifest.chunkSize);
    const ahead: ChunkRef[] = [];
    for (let i = last + 1; i < Math.min(total, last + 1 + this.opts.readaheadChunks); i++) {
      if (!isPopulated(fd, i * manifest.chunkSize, this.chunkLength(manifest, i)))
        ahead.push({ loc, manifest, index: i });
    }
    this.opts.chunks.prefetch(ahead);
  }
}
