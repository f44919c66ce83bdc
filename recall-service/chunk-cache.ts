// chunk-cache: fetches chunks of archived objects, once each, and hands out only verified
// bytes. A chunk is one ranged GET, streamed into one buffer; every verification block of it
// (256 KiB with a version 2 manifest) is checked against its sha256 as soon as it is in, so a
// recall can write the first blocks of a chunk while the rest is still on the wire. The GET
// starts before the hashes are known (the manifest may still be in flight); no byte counts as
// verified until they are. Concurrent users of a chunk share its GET (single flight); chunks
// fetched ahead of need (readahead) wait in a byte-bounded LRU until a recall writes them.
//
// Owns: the chunk buffers, their GETs and the retry loop (a broken stream resumes where it
// stopped, within the fetch deadline). Must not own: files or fds (writers take verified
// bytes and write them themselves).
import { createHash } from "node:crypto";
import type { Hash } from "node:crypto";
import { finished } from "node:stream/promises";
import type { Logger } from "pino";
import { RecallError, errorMessage, storeErrorReason } from "./errors.js";

import type { ObjectLocation, ObjectStore } from "./object-store.js";

export interface ChunkCacheOptions {
  readonly store: ObjectStore;
  readonly log: Logger;
  /** Upper bound of bytes kept for readahead. */
  readonly maxBytes: number;
  /** How long one chunk fetch (all attempts) may take when nobody waits with a deadline. */
  readonly fetchTimeoutMs: number;
}

/** How an object's bytes are checked: block i is [i * blockSize, (i + 1) * blockSize) of the object. */
export interface Verifier {
  /** Divides the chunk size. */
  readonly blockSize: number;
  readonly hashes: readonly string[];
}

export interface ChunkRef {
  readonly loc: ObjectLocation;
  /** Names the archived version (the manifest's sha256 from the stub state). */
  readonly version: string;
  readonly size: number;
  readonly chunkSize: number;
  readonly index: number;
  /** May still be pending while the chunk's GET runs. */
  readonly verifier: Promise<Verifier>;
}

/**
 * Bytes the store delivered to the GETs one caller started: a recall's own share of the store
 * traffic (a chunk another recall already fetched or is fetching adds nothing to it).
 */
export interface FetchTally {
  bytes: number;
}

/** Readahead GETs in flight at once, over all recalls. */
const MAX_PREFETCH_GETS = 8;
/** Consecutive readahead chunks share one GET up to this many bytes. */
const RUN_BYTES = 16 * 1024 * 1024;

function failureOf(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function cacheKey(c: ChunkRef): string {
  return `${c.loc.bucket}\u0000${c.loc.key}\u0000${c.loc.versionId}\u0000${c.version}\u0000${c.index}`;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Waiter {
  readonly upTo: number;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/**
 * One chunk: the parts of it that arrived (kept as the network delivered them, never copied)
 * and how much of that is verified. Block hashes are computed incrementally over the parts.
 */
export class Chunk {
  readonly offset: number;
  readonly length: number;
  received = 0;
  /** [0, verified) of the chunk matched its hashes. */
  verified = 0;
  failure: Error | null = null;
  prefetched = false;
  /** Counts the bytes this chunk's GETs receive for the caller that started them. */
  tally: FetchTally | null = null;
  private readonly parts: Buffer[] = [];
  /** Chunk offset of each part. */
  private readonly starts: number[] = [];
  private verifier: Verifier | null = null;
  private hash: Hash | null = null;
  /** Bytes fed to `hash` so far (from the chunk start). */
  private hashed = 0;
  private nextPart = 0;
  private waiters: Waiter[] = [];
  /** The rest of the hashing waits for a later turn (advance). */
  private deferred = false;

  constructor(
    readonly ref: ChunkRef,
    private readonly onFailure: () => void,
  ) {
    this.offset = ref.index * ref.chunkSize;
    this.length = Math.min(ref.chunkSize, ref.size - this.offset);
  }

  get settled(): boolean {
    return this.failure !== null || this.verified === this.length;
  }

  /** The buffers holding [from, to) of the chunk (views, no copy); [from, to) must be verified. */
  slices(from: number, to: number): Buffer[] {
    if (to > this.verified) throw new Error("slices of unverified bytes asked for");
    const out: Buffer[] = [];
    for (let i = 0; i < this.parts.length && this.starts[i] < to; i++) {
      const start = this.starts[i];
      const part = this.parts[i];
      if (start + part.length <= from) continue;
      out.push(part.subarray(Math.max(0, from - start), Math.min(part.length, to - start)));
    }
    return out;
  }

  setVerifier(v: Verifier): void {
    this.verifier = v;
    this.advance();
  }

  take(part: Buffer): void {
    if (this.received + part.length > this.length) throw new Error("store returned more than the range asked for");
    this.parts.push(part);
    this.starts.push(this.received);
    this.received += part.length;
    this.advance();
  }

  fail(err: Error): void {
    if (this.settled) return;
    this.failure = err;
    for (const w of this.waiters.splice(0)) w.reject(err);
    this.onFailure();
  }

  /** Resolves once [0, upTo) is verified (upTo is clipped to the chunk). */
  wait(upTo: number): Promise<void> {
    const target = Math.min(upTo, this.length);
    if (this.verified >= target) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.waiters.push({ upTo: target, resolve, reject }));
  }

  /**
   * Hashes what arrived, block by block; marks complete matching blocks verified and wakes
   * waiters. Once a block wakes one, the rest is hashed on a later turn of the event loop: the
   * woken recall writes and answers first (a cold small read does not wait for the hashing of
   * the whole chunk that arrived meanwhile, with the manifest).
   */
  private advance(): void {
    const v = this.verifier;
    if (!v || this.failure || this.deferred) return;
    while (this.nextPart < this.parts.length) {
      if (this.waiters.some((w) => w.upTo <= this.verified)) {
        this.deferred = true;
        setImmediate(() => {
          this.deferred = false;
          this.advance();
        });
        break;
      }
      const part = this.parts[this.nextPart];
      const partStart = this.starts[this.nextPart];
      const blockEnd = Math.min(this.length, this.verified + v.blockSize);
      const upTo = Math.min(partStart + part.length, blockEnd);
      this.hash ??= createHash("sha256");
      this.hash.update(part.subarray(this.hashed - partStart, upTo - partStart));
      this.hashed = upTo;
      if (upTo === partStart + part.length) this.nextPart++;
      if (upTo < blockEnd) continue;
      const block = (this.offset + this.verified) / v.blockSize;
      if (this.hash.digest("hex") !== v.hashes[block]) {
        const key = this.ref.loc.key;
        this.fail(new RecallError("checksum-mismatch", `block ${block} of ${key} does not match its checksum`));
        return;
      }
      this.hash = null;
      this.verified = blockEnd;
    }
    const ready = this.waiters.filter((w) => w.upTo <= this.verified);
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => w.upTo > this.verified);
    for (const w of ready) w.resolve();
  }
}

export class ChunkCache {
  /** In flight and kept chunks, oldest use first. */
  private readonly chunks = new Map<string, Chunk>();
  private bytes = 0;
  private prefetchGets = 0;
  /** Chunk bytes fetched from the store since start, by every GET (manifests are not chunks). */
  bytesFetched = 0;
  fetches = 0;

  constructor(private readonly opts: ChunkCacheOptions) {}

  /** The chunk, fetching it when it is neither cached nor in flight (its bytes then count in `tally`). */
  chunk(c: ChunkRef, tally: FetchTally | null = null): Chunk {
    const key = cacheKey(c);
    const have = this.chunks.get(key);
    if (have) {
      this.chunks.delete(key);
      this.chunks.set(key, have);
      return have;
    }
    return this.fetch(key, c, false, tally);
  }

  /** The chunk when it is cached or in flight (no fetch started). */
  peek(c: ChunkRef): Chunk | undefined {
    return this.chunks.get(cacheKey(c));
  }

  /** Waits until [0, upTo) of the chunk is verified, at most until `signal` aborts. */
  async verified(chunk: Chunk, upTo: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw new RecallError("timeout", "recall deadline passed");
    const waiting = chunk.wait(upTo);
    waiting.catch(() => undefined);
    let onAbort: (() => void) | undefined;
    try {
      await Promise.race([
        waiting,
        new Promise<never>((_, reject) => {
          onAbort = () => reject(new RecallError("timeout", "recall deadline passed"));
          signal.addEventListener("abort", onAbort, { once: true });
        }),
      ]);
    } finally {
      if (onAbort) signal.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Starts fetching chunks ahead of need, within the byte budget and GET limit. Consecutive
   * chunks go in one GET of up to RUN_BYTES (fewer, larger GETs stream faster; each chunk is
   * still verified block by block and fetched once). The bytes of the GETs started here count
   * in `tally`. Never throws.
   */
  prefetch(chunks: readonly ChunkRef[], tally: FetchTally | null = null): void {
    let run: Array<{ key: string; ref: ChunkRef }> = [];
    const flush = () => {
      if (run.length > 0) this.fetchRun(run, tally);
      run = [];
    };
    for (const c of chunks) {
      const key = cacheKey(c);
      if (this.chunks.has(key)) {
        flush();
        continue;
      }
      const prev = run[run.length - 1]?.ref;
      const joins = prev !== undefined && prev.index + 1 === c.index && (run.length + 1) * c.chunkSize <= RUN_BYTES;
      if (!joins) flush();
      if (run.length === 0 && this.prefetchGets >= MAX_PREFETCH_GETS) return;
      this.evict();
      if (this.bytes + run.length * c.chunkSize + c.chunkSize > this.opts.maxBytes) break;
      run.push({ key, ref: c });
    }
    flush();
  }

  /** Forgets a chunk (its bytes are in the file now). */
  drop(c: ChunkRef): void {
    const key = cacheKey(c);
    const have = this.chunks.get(key);
    if (have && have.settled) this.forget(key, have);
  }

  private forget(key: string, chunk: Chunk): void {
    if (this.chunks.get(key) !== chunk) return;
    this.chunks.delete(key);
    this.bytes -= chunk.length;
  }

  /** Drops settled chunks, oldest use first, until the cache is within its budget. */
  private evict(): void {
    for (const [key, chunk] of this.chunks) {
      if (this.bytes <= this.opts.maxBytes) return;
      if (chunk.settled) this.forget(key, chunk);
    }
  }

  /** A new chunk in the table, verified once its hashes are known; its bytes come from the caller's GET. */
  private add(key: string, c: ChunkRef, prefetched: boolean, tally: FetchTally | null): Chunk {
    const chunk = new Chunk(c, () => this.forget(key, chunk));
    chunk.prefetched = prefetched;
    chunk.tally = tally;
    this.chunks.set(key, chunk);
    this.bytes += chunk.length;
    this.evict();
    c.verifier.then(
      (v) => chunk.setVerifier(v),
      (err: unknown) => chunk.fail(failureOf(err)),
    );
    return chunk;
  }

  private fetch(key: string, c: ChunkRef, prefetched: boolean, tally: FetchTally | null): Chunk {
    const chunk = this.add(key, c, prefetched, tally);
    if (prefetched) this.prefetchGets++;
    void this.stream(chunk)
      .catch((err: unknown) => chunk.fail(failureOf(err)))
      .finally(() => {
        if (prefetched) this.prefetchGets--;
      });
    return chunk;
  }

  /** Readahead of consecutive chunks with one GET; a chunk left short by a failure resumes on its own. */
  private fetchRun(run: ReadonlyArray<{ key: string; ref: ChunkRef }>, tally: FetchTally | null): void {
    if (run.length === 1) {
      this.fetch(run[0].key, run[0].ref, true, tally);
      return;
    }
    const chunks = run.map((r) => this.add(r.key, r.ref, true, tally));
    this.prefetchGets++;
    void this.streamRun(chunks)
      .catch(() => undefined)
      .then(() =>
        Promise.all(
          chunks
            .filter((c) => c.received < c.length && c.failure === null)
            .map((c) => this.stream(c).catch((err: unknown) => c.fail(failureOf(err)))),
        ),
      )
      .finally(() => this.prefetchGets--);
  }

  /** One GET for consecutive chunks, its bytes split between them at their boundaries (views, no copy). */
  private async streamRun(chunks: readonly Chunk[]): Promise<void> {
    const first = chunks[0];
    const last = chunks[chunks.length - 1];
    const start = first.offset;
    const body = await this.opts.store.getRangeStream(
      first.ref.loc,
      start,
      last.offset + last.length - start,
      AbortSignal.timeout(this.opts.fetchTimeoutMs),
    );
    this.fetches++;
    let i = 0;
    body.on("data", (b: Buffer) => {
      this.bytesFetched += b.length;
      if (first.tally) first.tally.bytes += b.length;
      let at = 0;
      while (at < b.length && i < chunks.length) {
        const c = chunks[i];
        const n = Math.min(c.length - c.received, b.length - at);
        // A failed chunk keeps no bytes, but its share of the stream still has to be skipped.
        if (c.failure === null) c.take(b.subarray(at, at + n));
        else c.received += n;
        at += n;
        if (c.received === c.length) i++;
      }
      if (at < b.length) body.destroy(new Error("store returned more than the range asked for"));
    });
    await finished(body);
  }

  /** Streams the chunk in, resuming after transient errors until the fetch deadline. */
  private async stream(chunk: Chunk): Promise<void> {
    const { loc } = chunk.ref;
    const deadline = Date.now() + this.opts.fetchTimeoutMs;
    let lastErr: unknown;
    for (let attempt = 0; chunk.received < chunk.length && chunk.failure === null; attempt++) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      try {
        const from = chunk.received;
        const signal = AbortSignal.timeout(remaining);
        const body = await this.opts.store.getRangeStream(loc, chunk.offset + from, chunk.length - from, signal);
        this.fetches++;
        body.on("data", (b: Buffer) => {
          this.bytesFetched += b.length;
          if (chunk.tally) chunk.tally.bytes += b.length;
          try {
            chunk.take(b);
          } catch (err: unknown) {
            body.destroy(err instanceof Error ? err : new Error(String(err)));
          }
          if (chunk.failure) body.destroy();
        });
        try {
          await finished(body);
        } catch (err: unknown) {
          if (chunk.failure) return;
          throw err;
        }
        if (chunk.received < chunk.length) throw new Error(`short read: ${chunk.received} of ${chunk.length} bytes`);
        return;
      } catch (err: unknown) {
        lastErr = err;
        const reason = storeErrorReason(err);
        if (reason === "object-missing" || reason === "checksum-mismatch") break;
        this.opts.log.warn(
          { reason, attempt, key: loc.key, chunk: chunk.ref.index, err: errorMessage(err) },
          "chunk fetch failed",
        );
        await sleep(Math.min(2000, 100 * 2 ** attempt));
      }
    }
    if (chunk.received === chunk.length || chunk.failure) return;
    if (lastErr instanceof RecallError) throw lastErr;
    const reason = lastErr === undefined ? "timeout" : storeErrorReason(lastErr);
    throw new RecallError(
      reason === "timeout" ? "store-unavailable" : reason,
      errorMessage(lastErr ?? "fetch timed out"),
      { cause: lastErr },
    );
  }
}
