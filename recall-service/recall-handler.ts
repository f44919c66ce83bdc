// recall-handler: serves one Recall RPC. It takes the fd the listener sent for the request,
// works out which chunks the access needs and which are missing, fetches them (verified,
// shared, with readahead), writes them through the fd and answers the verdict. Writes run on
// libuv's thread pool (never blocking other recalls). fdatasync runs only when the file is
// complete, before the reply that lets the listener clear the stub state: a partial recall
// lost in a crash leaves holes that SEEK_DATA reports, so the stub stays valid and retryable.
//
// Writes the audit record of every call and counts it in the metrics.
// Owns: the fd of the request for the duration of the call (closed in finally). Must not
// own: the stub state (the listener keeps it) or any path. Never opens a file.
import { fdatasync, write } from "node:fs";
import { promisify } from "node:util";
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
import { auditRecord } from "./audit.js";
import type { RecallMetrics } from "./metrics.js";
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
  readonly metrics: RecallMetrics;
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

const writeAsync = promisify(write);
const fdatasyncAsync = promisify(fdatasync);

/** pwrite of all of `data` at `position`, on the thread pool (short writes continue). */
async function writeAll(fd: number, data: Buffer, position: number): Promise<void> {
  for (let done = 0; done < data.length;) {
    const { bytesWritten } = await writeAsync(fd, data, done, data.length - done, position + done);
    if (bytesWritten === 0) throw new Error("write wrote nothing");
    done += bytesWritten;
  }
}

/**
 * Runs `fn` over `items`, at most `limit` at a time. On the first failure no new item starts,
 * and it returns (throwing that failure) only once every started call has settled: a write
 * still running on the thread pool must never outlive the fd it writes through.
 */
async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | null = null;
  const worker = async () => {
    while (failure === null && next < items.length) {
      try {
        await fn(items[next++]);
      } catch (err: unknown) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== null) throw (failure as { err: unknown }).err;
}

export class RecallHandler {
  constructor(private readonly opts: RecallHandlerOptions) {}

  async handle(req: RecallRequest, signal: AbortSignal): Promise<Reply> {
    const started = Date.now();
    this.opts.metrics.inFlight++;
    let reply: Reply;
    let reason: ReasonName = "recalled";
    try {
      const fd = await this.opts.inbox.take(req.requestId, this.opts.fdWaitMs);
      if (fd === null) {
        reason = "fd-missing";
        reply = this.deny(req, reason);
      } else {
        try {
          reply = await this.recallThrough(fd, req, signal);
        } catch (err: unknown) {
          reason = err instanceof RecallError ? err.reason : "write-failed";
          this.opts.log.warn({ reqId: req.requestId.toString(), reason, err: errorMessage(err) }, "recall failed");
          reply = this.deny(req, reason);
        } finally {
          native.close(fd);
        }
      }
    } finally {
      this.opts.metrics.inFlight--;
    }
    const durationMs = Date.now() - started;
    const verdict = reply.verdict === Verdict.ALLOW ? "allow" : "deny";
    const bytesFetched = Number(reply.bytesFetched ?? 0n);
    this.opts.metrics.recordRecall(verdict, reason, durationMs / 1000, Number(reply.bytesWritten ?? 0n));
    this.opts.log.info(auditRecord(req, { verdict, reason, bytesFetched, durationMs }), "recall");
    return reply;
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
    // The chunks the reader waits for are asked for first; readahead starts only once they
    // are in flight, so it never competes with them for the first bytes on the wire.
    // (The loop below joins these fetches in this same tick: gets of a chunk share one GET.)
    this.opts.chunks.start(missing.slice(0, this.opts.parallelFetches).map((index) => ({ loc, manifest, index })));
    if (req.mode === RecallMode.RANGE && wanted.length > 0)
      this.readahead(fd, loc, manifest, wanted[wanted.length - 1]);
    let written = 0;
    await forEachLimited(missing, this.opts.parallelFetches, async (index) => {
      const data = await this.opts.chunks.get({ loc, manifest, index }, signal);
      if (signal.aborted) throw new RecallError("timeout", "recall deadline passed");
      try {
        await writeAll(fd, data, index * manifest.chunkSize);
      } catch (err: unknown) {
        throw new RecallError(writeErrorReason(err), `write failed: ${errorMessage(err)}`, { cause: err });
      }
      written += data.length;
    });
    const populated = native.dataBytes(fd, size);
    try {
      if (written > 0 && populated >= size) await fdatasyncAsync(fd);
    } catch (err: unknown) {
      throw new RecallError(writeErrorReason(err), `fdatasync failed: ${errorMessage(err)}`, { cause: err });
    }
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
