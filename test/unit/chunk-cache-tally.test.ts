// The chunk cache's per-caller fetch tally: the bytes a caller's own GETs received (its chunks
// and its readahead), nothing for a chunk another caller already fetched, while the
// store-wide counter sees every byte. The store is an in-memory stand-in for S3.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import pino from "pino";
import { ChunkCache } from "../../recall-service/chunk-cache.js";
import type { ChunkRef, FetchTally } from "../../recall-service/chunk-cache.js";
import type { ObjectLocation, ObjectStore } from "../../recall-service/object-store.js";

const CHUNK = 64 * 1024;
const data = Buffer.alloc(4 * CHUNK);
for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
const loc: ObjectLocation = { bucket: "b", key: "k", versionId: "" };
const hashes = Array.from({ length: 4 }, (_, i) =>
  createHash("sha256")
    .update(data.subarray(i * CHUNK, (i + 1) * CHUNK))
    .digest("hex"),
);

function memoryStore(): ObjectStore {
  const refuse = () => Promise.reject(new Error("not used here"));
  return {
    getRange: refuse,
    getRangeStream: (_l, offset, length) => Promise.resolve(Readable.from([data.subarray(offset, offset + length)])),
    getStream: refuse,
    put: refuse,
    stat: refuse,
    ping: refuse,
    ensureBucket: refuse,
    list: refuse,
    remove: refuse,
  };
}

const ref = (index: number): ChunkRef => ({
  loc,
  version: "v",
  size: data.length,
  chunkSize: CHUNK,
  index,
  verifier: Promise.resolve({ blockSize: CHUNK, hashes }),
});

test("a caller's tally counts the bytes its own GETs fetched, not a chunk someone else fetched", async () => {
  const cache = new ChunkCache({
    store: memoryStore(),
    log: pino({ level: "silent" }),
    maxBytes: 16 * CHUNK,
    fetchTimeoutMs: 5_000,
  });
  const signal = new AbortController().signal;
  const first: FetchTally = { bytes: 0 };
  const second: FetchTally = { bytes: 0 };
  const a = cache.chunk(ref(0), first);
  await cache.verified(a, CHUNK, signal);
  const b = cache.chunk(ref(0), second);
  await cache.verified(b, CHUNK, signal);
  assert.equal(first.bytes, CHUNK);
  assert.equal(second.bytes, 0, "a cached chunk costs its second user no fetch");

  // Readahead of three consecutive chunks goes out as one GET; its bytes are the caller's.
  cache.prefetch([ref(1), ref(2), ref(3)], second);
  for (const i of [1, 2, 3]) {
    const c = cache.peek(ref(i));
    assert.ok(c, `chunk ${i} is in flight`);
    await cache.verified(c, CHUNK, signal);
  }
  assert.equal(second.bytes, 3 * CHUNK);
  assert.equal(cache.bytesFetched, 4 * CHUNK, "the store-wide counter sees every byte");
});
