// recall-handler: serves one Recall RPC. It takes the fd the listener sent for the request,
// works out which chunks the access needs and which are missing, fetches them (verified per
// block, shared, with readahead: the next chunk after a reader's read, more after a window of
// the listener's read-ahead stream), writes the verified blocks of those chunks through the fd
// (the asked ones as soon as they are verified, with any verified bytes of the same chunk
// already in memory; nothing past them: a reader's next read is the stream's to bring) and
// answers the verdict. Only blocks with a hole are written; nothing is written
// after the call returns. Writes run on libuv's thread pool (never blocking other recalls). fdatasync runs only when the file is
// complete, before the reply that lets the listener clear the stub state: a partial recall
// lost in a crash leaves holes that SEEK_DATA reports, so the stub stays valid and retryable.
//
// Writes the audit record of every call and counts it in the metrics.
// Owns: the fd of the request for the duration of the call (closed in finally). Must not
// own: the stub state (the listener keeps it) or any path. Never opens a file.
import { fdatasync, writev } from "node:fs";
import { promisify } from "node:util";
import type { Logger } from "pino";
import * as native from "../native/index.js";
import type { Integrity, RecallRequest } from "../proto/index.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { RecallResponseSchema } from "../proto/index.js";
import { RecallMode, Verdict, accessOutcome, reasonToProto } from "../proto/index.js";
import type { ReasonName } from "../proto/index.js";
import type { Chunk, ChunkCache, ChunkRef, FetchTally, Verifier } from "./chunk-cache.js";
import { RecallError, errorMessage, writeErrorReason } from "./errors.js";
import type { FdInbox } from "./fd-inbox.js";
import { blockSizeFor, checkedByContentHash } from "../proto/manifest-format.js";
import type { ManifestLoader, ManifestLocation } from "./manifest-loader.js";
import type { Manifest } from "./manifest.js";
import type { ObjectLocation } from "./object-store.js";
import { auditRecord } from "./audit.js";
import type { RecallMetrics } from "./metrics.js";
import { holeRuns, isPopulated } from "./populated.js";

export interface RecallHandlerOptions {
  readonly inbox: FdInbox;
  readonly chunks: ChunkCache;
  readonly manifests: ManifestLoader;
  readonly log: Logger;
  /** Chunks past a ranged read whose GETs start (they wait in memory until needed); 0: none. */
  readonly readaheadChunks: number;
  /** Chunks one recall fetches and writes at once (at least 1). */
  readonly parallelFetches: number;
  readonly fdWaitMs: number;
  readonly metrics: RecallMetrics;
}

type Reply = MessageInitShape<typeof RecallResponseSchema>;

/** What one call moved, reported whatever its verdict (a denied recall may have done both). */
interface RecallIo {
  /** Bytes the GETs this call started (its chunks and its readahead) received before the reply. */
  readonly fetched: FetchTally;
  /** Bytes this call wrote into the file. */
  written: number;
}

/** One call's request, fd and what it has worked out, shared by the steps of the recall. */
interface RecallJob {
  readonly fd: number;
  readonly req: RecallRequest;
  readonly signal: AbortSignal;
  readonly io: RecallIo;
  readonly size: number;
  readonly chunkSize: number;
  readonly integrity: Integrity;
  readonly mloc: ManifestLocation;
  /** The hashes the bytes are checked against (started with the job, in flight). */
  readonly verifier: Promise<Verifier>;
  readonly refOf: (index: number) => ChunkRef;
}

/** A chunk with a hole in a wanted range, and the wanted bytes of it (file offsets). */
interface NeededChunk {
  readonly index: number;
  readonly from: number;
  to: number;
}

/**
 * The chunks with a hole in a wanted range, in order. Their GETs start at once, alongside the
 * manifest's: bytes wait in memory until the manifest's hashes have checked them.
 */
function neededChunks(job: RecallJob, ranges: ReadonlyArray<readonly [number, number]>): NeededChunk[] {
  const { fd, size, chunkSize } = job;
  // The block size new manifests use for this chunk size (a one-chunk file: the chunk).
  const checkBlock = checkedByContentHash(size, chunkSize) ? chunkSize : blockSizeFor(chunkSize);
  const needed: NeededChunk[] = [];
  for (const [start, end] of ranges) {
    for (let i = Math.floor(start / chunkSize); i * chunkSize < end; i++) {
      const from = Math.max(start, i * chunkSize);
      const to = Math.min(end, (i + 1) * chunkSize);
      // Whole verification blocks: a block with a hole anywhere cannot be checked (here or by
      // the listener), so it is needed even when the asked bytes of it are there.
      const blockFrom = Math.floor(from / checkBlock) * checkBlock;
      const blockTo = Math.min(size, (i + 1) * chunkSize, Math.ceil(to / checkBlock) * checkBlock);
      if (isPopulated(fd, blockFrom, blockTo - blockFrom)) continue;
      const last = needed[needed.length - 1];
      if (last && last.index === i) last.to = to;
      else needed.push({ index: i, from, to });
    }
  }
  return needed;
}

const writevAsync = promisify(writev);
const IOV_MAX = 1024;
const fdatasyncAsync = promisify(fdatasync);

/** pwritev of all of `data` at `position`, on the thread pool (short writes continue). */
async function writeAll(fd: number, data: readonly Buffer[], position: number): Promise<void> {
  const bufs = data.filter((b) => b.length > 0);
  for (let pos = position; bufs.length > 0;) {
    const { bytesWritten } = await writevAsync(fd, bufs.slice(0, IOV_MAX), pos);
    if (bytesWritten === 0) throw new Error("write wrote nothing");
    pos += bytesWritten;
    let left = bytesWritten;
    while (left > 0 && left >= bufs[0].length) left -= bufs.shift()!.length;
    if (left > 0) bufs[0] = bufs[0].subarray(left);
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
    const io: RecallIo = { fetched: { bytes: 0 }, written: 0 };
    try {
      const fd = await this.opts.inbox.take(req.requestId, this.opts.fdWaitMs);
      if (fd === null) {
        reason = "fd-missing";
        reply = this.deny(req, reason);
      } else {
        try {
          reply = await this.recallThrough(fd, req, signal, io);
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
    const bytesFetched = io.fetched.bytes;
    const bytesWritten = io.written;
    reply = { ...reply, bytesFetched: BigInt(bytesFetched), bytesWritten: BigInt(bytesWritten) };
    const durationMs = Date.now() - started;
    const verdict = reply.verdict === Verdict.ALLOW ? "allow" : "deny";
    this.opts.metrics.recordRecall(verdict, reason, durationMs / 1000, bytesWritten);
    this.opts.log.info(auditRecord(req, { verdict, reason, bytesFetched, bytesWritten, durationMs }), "recall");
    return reply;
  }

  private deny(req: RecallRequest, reason: ReasonName): Reply {
    return {
      requestId: req.requestId,
      verdict: Verdict.DENY,
      errno: accessOutcome(reason).errno,
      reason: reasonToProto(reason),
    };
  }

  /** Recalls what `req` asks through `fd`: check, fetch and write, then the reply. */
  private async recallThrough(fd: number, req: RecallRequest, signal: AbortSignal, io: RecallIo): Promise<Reply> {
    const job = this.startJob(fd, req, signal, io);
    const ranges = this.wantedRanges(req, job.size);
    const needed = neededChunks(job, ranges);
    const whole = req.mode !== RecallMode.RANGE;
    await forEachLimited(needed, Math.max(1, this.opts.parallelFetches), (n) => this.fetchAndWrite(job, n, whole));
    if (!whole && ranges.length > 0) {
      // A window of the listener's read-ahead stream (range_only), or a read that follows the
      // previous one (sequential), gets the chunks after it fetched into memory for what comes
      // next; any other read only the next chunk (a random 4 KiB read starts no 64 MiB of GETs).
      const deep = req.rangeOnly || req.sequential;
      const depth = deep ? this.opts.readaheadChunks : Math.min(1, this.opts.readaheadChunks);
      this.readahead(job, ranges[ranges.length - 1][1], depth);
    }
    return this.reply(job);
  }

  /**
   * Checks that the request is whole and that `fd` is the file it names, unchanged in size,
   * then starts getting the hashes its bytes are checked against.
   */
  private startJob(fd: number, req: RecallRequest, signal: AbortSignal, io: RecallIo): RecallJob {
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
    const chunkSize = Number(integrity.chunkSize);
    if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) throw new RecallError("protocol-error", "bad chunk size");
    const loc: ObjectLocation = { bucket: object.bucket, key: object.key, versionId: object.versionId };
    const mloc: ManifestLocation = {
      bucket: object.bucket,
      key: object.key,
      manifestVersionId: object.manifestVersionId,
    };
    const verifier = this.verifierFor(mloc, integrity, size, signal);
    verifier.catch(() => undefined);
    const refOf = (index: number): ChunkRef => ({
      loc,
      version: integrity.manifestSha256,
      size,
      chunkSize,
      index,
      verifier,
    });
    return { fd, req, signal, io, size, chunkSize, integrity, mloc, verifier, refOf };
  }

  /** Fetches one needed chunk, waits until the asked blocks are verified and writes them. */
  private async fetchAndWrite(job: RecallJob, n: NeededChunk, whole: boolean): Promise<void> {
    const chunk = this.opts.chunks.chunk(job.refOf(n.index), job.io.fetched);
    const { blockSize } = await job.verifier;
    const from = Math.floor((n.from - chunk.offset) / blockSize) * blockSize;
    const to = whole ? chunk.length : Math.min(chunk.length, Math.ceil((n.to - chunk.offset) / blockSize) * blockSize);
    await this.opts.chunks.verified(chunk, to, job.signal);
    if (job.signal.aborted) throw new RecallError("timeout", "recall deadline passed");
    // Everything verified by now is written, not only the blocks asked for.
    await this.writeVerified(job, chunk, from, chunk.verified, blockSize);
  }

  /** Writes the verified bytes of `chunk` from `from` to `upTo` into the holes of the file. */
  private async writeVerified(
    job: RecallJob,
    chunk: Chunk,
    from: number,
    upTo: number,
    blockSize: number,
  ): Promise<void> {
    const fd = job.fd;
    // Whole blocks only: a part of a block would leave a block with a hole that no check can
    // pass (the listener refuses it), and that a ranged recall of its present part skips.
    const to = upTo >= chunk.length ? chunk.length : Math.floor(upTo / blockSize) * blockSize;
    for (const [a, b] of holeRuns(fd, chunk.offset + from, chunk.offset + to, blockSize)) {
      try {
        await writeAll(fd, chunk.slices(a - chunk.offset, b - chunk.offset), a);
      } catch (err: unknown) {
        throw new RecallError(writeErrorReason(err), `write failed: ${errorMessage(err)}`, { cause: err });
      }
      job.io.written += b - a;
    }
    // A chunk whose bytes are all in the file now is not needed in memory any more.
    if (isPopulated(fd, chunk.offset, chunk.length)) this.opts.chunks.drop(chunk.ref);
  }

  /** Makes the file durable when it is complete and builds the allowing reply. */
  private async reply(job: RecallJob): Promise<Reply> {
    const { fd, req, size, chunkSize } = job;
    // The listener checks the bytes itself before it allows the access: it gets the manifest's
    // bytes (as stored; it hashes them) when it has none yet.
    const manifest =
      req.wantManifest && !checkedByContentHash(size, chunkSize)
        ? (await this.opts.manifests.load(job.mloc, job.integrity, size, job.signal)).raw
        : undefined;
    const populated = native.dataBytes(fd, size);
    try {
      if (job.io.written > 0 && populated >= size) await fdatasyncAsync(fd);
    } catch (err: unknown) {
      throw new RecallError(writeErrorReason(err), `fdatasync failed: ${errorMessage(err)}`, { cause: err });
    }
    return {
      requestId: req.requestId,
      verdict: Verdict.ALLOW,
      reason: reasonToProto("recalled"),
      populatedBytes: BigInt(populated),
      fullyPopulated: populated >= size,
      ...(manifest ? { manifest } : {}),
    };
  }

  /** The byte ranges the access needs, clipped to the file, in order. */
  private wantedRanges(req: RecallRequest, size: number): Array<[number, number]> {
    if (req.mode !== RecallMode.RANGE) return size > 0 ? [[0, size]] : [];
    const out: Array<[number, number]> = [];
    for (const r of req.ranges) {
      const start = Number(r.offset);
      const end = Math.min(size, start + Number(r.length));
      if (end > start) out.push([start, end]);
    }
    return out.sort((a, b) => a[0] - b[0]);
  }

  /**
   * The hashes the bytes are checked against. A file of one chunk is checked against the
   * whole-content sha256 of the trusted stub state (no manifest GET); a larger one against
   * its manifest's block hashes.
   */
  private verifierFor(
    loc: ManifestLocation,
    integrity: Integrity,
    size: number,
    signal: AbortSignal,
  ): Promise<Verifier> {
    const chunkSize = Number(integrity.chunkSize);
    if (checkedByContentHash(size, chunkSize))
      return Promise.resolve({ blockSize: chunkSize, hashes: [integrity.contentSha256] });
    return this.opts.manifests
      .get(loc, integrity, size, signal)
      .then((m: Manifest) => ({ blockSize: m.blockSize, hashes: m.blocks }));
  }

  /** Starts GETs of the chunks after `end` that the file still lacks (they wait in memory). */
  private readahead(job: RecallJob, end: number, depth: number): void {
    const { fd, size, chunkSize } = job;
    const total = Math.ceil(size / chunkSize);
    const first = Math.ceil(end / chunkSize);
    const ahead: ChunkRef[] = [];
    for (let i = first; i < Math.min(total, first + depth); i++) {
      if (!isPopulated(fd, i * chunkSize, Math.min(chunkSize, size - i * chunkSize))) ahead.push(job.refOf(i));
    }
    this.opts.chunks.prefetch(ahead, job.io.fetched);
  }
}
