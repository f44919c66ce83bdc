// chunk-cache: fetches verified chunks of archived objects, once. Concurrent requests for
// the same chunk share one GET (single flight); chunks fetched ahead of need (readahead)
// wait in a byte-bounded LRU until a recall writes them. Every chunk is checked against
// its manifest sha256 before anyone sees it.
//
// Owns: in-flight fetches, the LRU and the retry loop of a fetch. Must not own: files or
// fds (writers take the verified buffer and write it themselves).
import type { Logger } from "pino";
import { RecallError, errorMessage, storeErrorReason } from "./errors.js";
import type { Manifest } from "./manifest.js";
import { sha256Hex } from "./manifest.js";
import type { ObjectLocation, ObjectStore } from "./object-store.js";

export interface ChunkCacheOptions {
  readonly store: ObjectStore;
  readonly log: Logger;
  /** Upper bound of bytes kept for readahead. */
  readonly maxBytes: number;
  /** How long one chunk fetch (all attempts) may take when nobody waits with a deadline. */
  readonly fetchTimeoutMs: number;
}

export interface ChunkRef {
  readonly loc: ObjectLocation;
  readonly manifest: Manifest;
  readonly index: number;
}

function cacheKey(c: ChunkRef): string {
  return `${c.loc.bucket}\u0000${c.loc.key}\u0000${c.loc.versionId}\u0000${c.manifest.sha256}\u0000${c.index}`;
}

function chunkBounds(m: Manifest, index: number): { offset: number; length: number } {
  const offset = index * m.chunkSize;
  return { offset, length: Math.min(m.chunkSize, m.size - offset) };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class ChunkCache {
  private readonly inflight = new Map<string, Promise<Buffer>>();
  private readonly lru = new Map<string, Buffer>();
  private lruBytes = 0;
  /** Bytes fetched from the store since start (for tests, metrics and benchmarks). */
  bytesFetched = 0;
  fetches = 0;

  constructor(private readonly opts: ChunkCacheOptions) {}

  /** Returns the verified chunk, waiting at most until `signal` aborts. */
  async get(c: ChunkRef, signal: AbortSignal): Promise<Buffer> {
    const key = cacheKey(c);
    const cached = this.lru.get(key);
    if (cached) {
      this.lru.delete(key);
      this.lruBytes -= cached.length;
      return cached;
    }
    const shared = this.fetchShared(key, c);
    return new Promise<Buffer>((resolve, reject) => {
      if (signal.aborted) return reject(new RecallError("timeout", "recall deadline passed"));
      const onAbort = () => reject(new RecallError("timeout", "recall deadline passed"));
      signal.addEventListener("abort", onAbort, { once: true });
      shared.then(
        (b) => {
          signal.removeEventListener("abort", onAbort);
          resolve(b);
        },
        (err: unknown) => {
          signal.removeEventListener("abort", onAbort);
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
  }

  /**
   * Starts the fetches of chunks that a get() is about to ask for (in this tick), so they
   * are on the wire before any readahead. Leaves the LRU alone. Never throws.
   */
  start(chunks: readonly ChunkRef[]): void {
    for (const c of chunks) {
      const key = cacheKey(c);
      if (this.lru.has(key) || this.inflight.has(key)) continue;
      this.fetchShared(key, c).catch(() => undefined);
    }
  }

  /** Starts fetching chunks ahead of need; their buffers wait in the LRU. Never throws. */
  prefetch(chunks: readonly ChunkRef[]): void {
    for (const c of chunks) {
      const key = cacheKey(c);
      if (this.lru.has(key) || this.inflight.has(key)) continue;
      if (this.lruBytes + c.manifest.chunkSize > this.opts.maxBytes) return;
      this.fetchShared(key, c).then(
        (b) => this.remember(key, b),
        () => {},
      );
    }
  }

  private remember(key: string, b: Buffer): void {
    if (this.lru.has(key) || b.length > this.opts.maxBytes) return;
    this.lru.set(key, b);
    this.lruBytes += b.length;
    for (const [k, v] of this.lru) {
      if (this.lruBytes <= this.opts.maxBytes) break;
      this.lru.delete(k);
      this.lruBytes -= v.length;
    }
  }

  private fetchShared(key: string, c: ChunkRef): Promise<Buffer> {
    let p = this.inflight.get(key);
    if (!p) {
      p = this.fetchVerified(c).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  private async fetchVerified(c: ChunkRef): Promise<Buffer> {
    const { offset, length } = chunkBounds(c.manifest, c.index);
    const deadline = Date.now() + this.opts.fetchTimeoutMs;
    let lastErr: unknown;
    for (let attempt = 0; ; attempt++) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      try {
        const data = await this.opts.store.getRange(c.loc, offset, length, AbortSignal.timeout(remaining));
        this.fetches++;
        this.bytesFetched += data.length;
        if (data.length !== length || sha256Hex(data) !== c.manifest.chunks[c.index]) {
          throw new RecallError("checksum-mismatch", `chunk ${c.index} of ${c.loc.key} does not match its checksum`);
        }
        return data;
      } catch (err: unknown) {
        lastErr = err;
        const reason = storeErrorReason(err);
        if (reason === "object-missing" || reason === "checksum-mismatch") break;
        this.opts.log.warn(
          { reason, attempt, key: c.loc.key, chunk: c.index, err: errorMessage(err) },
          "chunk fetch failed",
        );
        await sleep(Math.min(2000, 100 * 2 ** attempt));
      }
    }
    if (lastErr instanceof RecallError) throw lastErr;
    const reason = lastErr === undefined ? "timeout" : storeErrorReason(lastErr);
    throw new RecallError(
      reason === "timeout" ? "store-unavailable" : reason,
      errorMessage(lastErr ?? "fetch timed out"),
      {
        cause: lastErr,
      },
    );
  }
}
