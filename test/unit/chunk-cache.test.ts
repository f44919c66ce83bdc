// The chunk cache against an in-memory store: one GET per chunk however many wait on it, no
// byte counted as verified before its block hash is known and matches, a corrupted block
// refused with checksum-mismatch (and the chunk forgotten, so a later recall fetches again),
// transient GET failures retried, and readahead kept within its byte budget.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { pino } from "pino";
import { ChunkCache } from "../../recall-service/chunk-cache.js";
import type { ChunkRef, Verifier } from "../../recall-service/chunk-cache.js";
import { RecallError } from "../../recall-service/errors.js";
import { blockSizeFor, sha256Hex } from "../../recall-service/manifest.js";
import { MemoryStore } from "../helpers/memory-store.js";

const MiB = 1024 * 1024;
const CHUNK = MiB;
const BLOCK = blockSizeFor(CHUNK);
const log = pino({ level: "silent" });
const loc = { bucket: "b", key: "obj", versionId: "" };
const never = new AbortController().signal;

function verifierOf(data: Buffer): Verifier {
  const hashes: string[] = [];
  for (let at = 0; at < data.length; at += BLOCK) hashes.push(sha256Hex(data.subarray(at, at + BLOCK)));
  return { blockSize: BLOCK, hashes };
}

async function setup(size: number, maxBytes = 64 * MiB) {
  const store = new MemoryStore({ partBytes: 32 * 1024 });
  const data = randomBytes(size);
  await store.ensureBucket(loc.bucket);
  await store.put(loc.bucket, loc.key, data, size, {});
  const cache = new ChunkCache({ store, log, maxBytes, fetchTimeoutMs: 5000 });
  const verifier = Promise.resolve(verifierOf(data));
  const ref = (index: number, v: Promise<Verifier> = verifier): ChunkRef => ({
    loc,
    version: "m1",
    size,
    chunkSize: CHUNK,
    index,
    verifier: v,
  });
  return { store, data, cache, ref };
}

function joined(bufs: Buffer[]): Buffer {
  return Buffer.concat(bufs);
}

const isReason = (reason: string) => (err: unknown) => err instanceof RecallError && err.reason === reason;

describe("chunk cache", () => {
  test("concurrent users of a chunk share one GET and get the same verified bytes", async () => {
    const { store, data, cache, ref } = await setup(3 * CHUNK + 1000);
    store.delayMs = 20;
    const a = cache.chunk(ref(1));
    const b = cache.chunk(ref(1));
    assert.equal(a, b);
    await Promise.all([cache.verified(a, CHUNK, never), cache.verified(b, BLOCK, never)]);
    assert.equal(store.gets.length, 1);
    assert.deepEqual(store.gets[0], { key: "obj", versionId: "", offset: CHUNK, length: CHUNK });
    assert.equal(cache.fetches, 1);
    assert.deepEqual(joined(a.slices(0, CHUNK)), data.subarray(CHUNK, 2 * CHUNK));
    // Asked again after it is in: still no second GET.
    assert.equal(cache.chunk(ref(1)), a);
    assert.equal(store.gets.length, 1);
  });

  test("the short last chunk is fetched and verified to its end", async () => {
    const { data, cache, ref } = await setup(2 * CHUNK + 1000);
    const c = cache.chunk(ref(2));
    await cache.verified(c, CHUNK, never);
    assert.equal(c.length, 1000);
    assert.deepEqual(joined(c.slices(0, 1000)), data.subarray(2 * CHUNK));
  });

  test("no byte counts as verified until the block hashes are known", async () => {
    const { data, cache, ref } = await setup(2 * CHUNK);
    let resolve: (v: Verifier) => void = () => {};
    const pending = new Promise<Verifier>((r) => (resolve = r));
    const c = cache.chunk(ref(0, pending));
    while (c.received < c.length) await new Promise((r) => setTimeout(r, 5));
    assert.equal(c.verified, 0);
    assert.throws(() => c.slices(0, BLOCK), /unverified/);
    resolve(verifierOf(data));
    await cache.verified(c, CHUNK, never);
    assert.equal(c.verified, CHUNK);
  });

  test("verified blocks are handed out while the rest of the chunk is still on the wire", async () => {
    const { store, data, cache, ref } = await setup(2 * CHUNK);
    const release = store.holdStreamsAfter(BLOCK + 10);
    try {
      const c = cache.chunk(ref(0));
      await cache.verified(c, BLOCK, AbortSignal.timeout(2000));
      assert.equal(c.received, BLOCK + 10);
      assert.equal(c.verified, BLOCK);
      assert.deepEqual(joined(c.slices(0, BLOCK)), data.subarray(0, BLOCK));
      assert.throws(() => c.slices(0, BLOCK + 1), /unverified/);
      release();
      await cache.verified(c, CHUNK, never);
      assert.equal(c.verified, CHUNK);
    } finally {
      release();
    }
  });

  test("a corrupted block is refused with checksum-mismatch; the blocks before it stay verified", async () => {
    const { store, cache, ref } = await setup(2 * CHUNK);
    // Third block of chunk 0.
    store.corrupt(loc.bucket, loc.key, 2 * BLOCK + 17);
    const c = cache.chunk(ref(0));
    await assert.rejects(cache.verified(c, CHUNK, never), isReason("checksum-mismatch"));
    assert.equal(c.verified, 2 * BLOCK);
    assert.ok(c.failure instanceof RecallError && c.failure.reason === "checksum-mismatch");
    assert.throws(() => c.slices(0, 3 * BLOCK), /unverified/);
    // A checksum mismatch is not retried, and the failed chunk is forgotten: the next user fetches anew.
    assert.equal(store.gets.length, 1);
    assert.equal(cache.peek(ref(0)), undefined);
    assert.notEqual(cache.chunk(ref(0)), c);
    assert.equal(store.gets.length, 2);
  });

  test("a verifier that fails (a bad manifest) fails the chunk with its reason", async () => {
    const { cache, ref } = await setup(2 * CHUNK);
    const bad = Promise.reject(new RecallError("checksum-mismatch", "manifest does not match"));
    const c = cache.chunk(ref(0, bad));
    await assert.rejects(cache.verified(c, CHUNK, never), isReason("checksum-mismatch"));
  });

  test("a failed GET is retried and the chunk completes", async () => {
    const { store, data, cache, ref } = await setup(2 * CHUNK);
    store.failNextGet(1);
    const c = cache.chunk(ref(1));
    await cache.verified(c, CHUNK, never);
    assert.equal(store.gets.length, 2);
    assert.deepEqual(joined(c.slices(0, CHUNK)), data.subarray(CHUNK));
  });

  test("a missing object fails at once with object-missing (no retry)", async () => {
    const { store, cache, ref } = await setup(2 * CHUNK);
    const c = cache.chunk({ ...ref(0), loc: { ...loc, key: "gone" } });
    await assert.rejects(cache.verified(c, CHUNK, never), isReason("object-missing"));
    assert.equal(store.gets.length, 1);
  });

  test("a waiter gives up with timeout when its signal aborts", async () => {
    const { store, cache, ref } = await setup(2 * CHUNK);
    store.delayMs = 500;
    const c = cache.chunk(ref(0));
    await assert.rejects(cache.verified(c, CHUNK, AbortSignal.timeout(30)), isReason("timeout"));
  });

  test("readahead stays within the byte budget", async () => {
    const { store, cache, ref } = await setup(6 * CHUNK, 2 * CHUNK);
    cache.prefetch([ref(0), ref(1), ref(2), ref(3)]);
    assert.ok(cache.peek(ref(0)));
    assert.ok(cache.peek(ref(1)));
    assert.equal(cache.peek(ref(2)), undefined);
    assert.equal(cache.peek(ref(3)), undefined);
    // Consecutive chunks go in one GET.
    await cache.verified(cache.peek(ref(1))!, CHUNK, never);
    assert.deepEqual(
      store.gets.map((g) => [g.offset, g.length]),
      [[0, 2 * CHUNK]],
    );
  });

  test("drop forgets a settled chunk; a new chunk evicts the oldest settled one past the budget", async () => {
    const { cache, ref } = await setup(4 * CHUNK, CHUNK);
    const c0 = cache.chunk(ref(0));
    // An unsettled chunk is not dropped (a recall is still writing from it).
    cache.drop(ref(0));
    assert.equal(cache.peek(ref(0)), c0);
    await cache.verified(c0, CHUNK, never);
    const c1 = cache.chunk(ref(1));
    assert.equal(cache.peek(ref(0)), undefined, "over budget: the settled chunk 0 went");
    assert.equal(cache.peek(ref(1)), c1);
    await cache.verified(c1, CHUNK, never);
    cache.drop(ref(1));
    assert.equal(cache.peek(ref(1)), undefined);
  });
});
