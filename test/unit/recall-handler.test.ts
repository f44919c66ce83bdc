// The recall handler with its real collaborators (fd inbox on a temporary SEQPACKET socket,
// chunk cache, manifest loader) over an in-memory store, writing into a sparse temporary
// file whose fd travels on the fd channel as the listener sends it. No root: the fd is of a
// file in os.tmpdir() and the inbox's expected peer uid is our own.
//
// Checked on the file itself (SEEK_DATA/SEEK_HOLE and its bytes): a ranged recall fills only
// blocks of the asked chunk, never rewrites present blocks; a whole recall fills everything;
// a corrupted object or manifest is denied with checksum-mismatch and no wrong byte lands.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { closeSync, ftruncateSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import * as native from "../../native/index.js";
import {
  FdMessageType,
  RecallMode,
  RecallRequestSchema,
  Verdict,
  accessOutcome,
  encodeFdHeader,
  reasonFromProto,
} from "../../proto/index.js";
import { ChunkCache } from "../../recall-service/chunk-cache.js";
import { FdInbox } from "../../recall-service/fd-inbox.js";
import { ManifestLoader } from "../../recall-service/manifest-loader.js";
import { manifestKey } from "../../recall-service/manifest.js";
import { RecallMetrics } from "../../recall-service/metrics.js";
import { RecallHandler } from "../../recall-service/recall-handler.js";
import { MemoryStore, archiveBytes } from "../helpers/memory-store.js";
import type { Archived } from "../helpers/memory-store.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = MiB;
const BLOCK = 256 * KiB;
const SIZE = 4 * CHUNK + 12_345;
const log = pino({ level: "silent" });
const uid = process.getuid?.() ?? 0;
const never = new AbortController().signal;

let dir = "";
let inbox: FdInbox;
let conn = -1;
let nextId = 1n;
let nextFile = 0;
const openFds: number[] = [];

before(() => {
  dir = mkdtempSync(join(tmpdir(), "fanrecall-recall-handler-"));
  inbox = new FdInbox({ path: join(dir, "fd.sock"), peerUid: uid, parkMs: 10_000, log });
  conn = native.seqpacketConnect(join(dir, "fd.sock"));
});
after(() => {
  native.close(conn);
  inbox.close();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(() => {
  for (const fd of openFds.splice(0)) closeSync(fd);
});

interface Setup {
  readonly store: MemoryStore;
  readonly data: Buffer;
  readonly archived: Archived;
  readonly handler: RecallHandler;
}

/** Parts of 100 KiB, as a network delivers them: never aligned with the 256 KiB blocks. */
async function setup(opts: { size?: number; cacheBytes?: number; readaheadChunks?: number } = {}): Promise<Setup> {
  const size = opts.size ?? SIZE;
  const store = new MemoryStore({ versioned: true, partBytes: 100 * KiB });
  const data = randomBytes(size);
  const archived = await archiveBytes(store, { bucket: "b", key: "files/one" }, data, CHUNK);
  const chunks = new ChunkCache({ store, log, maxBytes: opts.cacheBytes ?? 64 * MiB, fetchTimeoutMs: 5000 });
  const handler = new RecallHandler({
    inbox,
    chunks,
    manifests: new ManifestLoader(store),
    log,
    readaheadChunks: opts.readaheadChunks ?? 0,
    parallelFetches: 1,
    fdWaitMs: 1000,
    metrics: new RecallMetrics(() => chunks.bytesFetched),
  });
  return { store, data, archived, handler };
}

/** A sparse file of `size` bytes (a released stub), opened read-write; the test keeps this fd. */
function stub(size: number): number {
  const path = join(dir, `stub-${nextFile++}`);
  writeFileSync(path, "");
  const fd = openSync(path, "r+");
  openFds.push(fd);
  ftruncateSync(fd, size);
  return fd;
}

/** Sends `fd` on the fd channel under a new request id, as the listener does. */
function offer(fd: number): bigint {
  const requestId = nextId++;
  assert.equal(native.sendWithFd(conn, encodeFdHeader({ type: FdMessageType.FD_OFFER, requestId }), fd), true);
  return requestId;
}

function request(
  s: Setup,
  fd: number,
  opts: {
    mode: RecallMode;
    ranges?: Array<[number, number]>;
    wantManifest?: boolean;
    requestId?: bigint;
    rangeOnly?: boolean;
    sequential?: boolean;
  },
) {
  const st = native.fstat(fd);
  return create(RecallRequestSchema, {
    requestId: opts.requestId ?? offer(fd),
    file: { dev: BigInt(st.dev), ino: BigInt(st.ino), size: BigInt(st.size), mtimeNs: st.mtimeNs },
    object: s.archived.object,
    integrity: s.archived.integrity,
    mode: opts.mode,
    ranges: (opts.ranges ?? []).map(([offset, length]) => ({ offset: BigInt(offset), length: BigInt(length) })),
    wantManifest: opts.wantManifest ?? false,
    rangeOnly: opts.rangeOnly ?? false,
    sequential: opts.sequential ?? false,
  });
}

/** The [start, end) runs of the file that hold data. */
function dataRuns(fd: number, size: number): Array<[number, number]> {
  const runs: Array<[number, number]> = [];
  for (let pos = 0; pos < size;) {
    const d = native.seekData(fd, pos);
    if (d === -1 || d >= size) break;
    const h = native.seekHole(fd, d);
    const end = h === -1 ? size : Math.min(h, size);
    runs.push([d, end]);
    pos = end;
  }
  return runs;
}

/** Every byte the file holds data for equals `data` there. */
function assertNoWrongByte(fd: number, data: Buffer): void {
  for (const [a, b] of dataRuns(fd, data.length)) {
    const buf = Buffer.alloc(b - a);
    assert.equal(readSync(fd, buf, 0, buf.length, a), b - a);
    assert.ok(buf.equals(data.subarray(a, b)), `bytes [${a}, ${b}) differ from the archived content`);
  }
}

const reasonOf = (r: { reason?: number }) => reasonFromProto(r.reason ?? 0);

describe("recall handler", () => {
  test("a ranged recall writes verified blocks of the asked chunk only", async () => {
    // A budget of one chunk leaves no room for readahead, so nothing else can be written ahead.
    const s = await setup({ cacheBytes: CHUNK });
    const fd = stub(SIZE);
    const start = CHUNK + 2 * BLOCK + 10;
    const reply = await s.handler.handle(request(s, fd, { mode: RecallMode.RANGE, ranges: [[start, 100]] }), never);
    assert.equal(reply.verdict, Verdict.ALLOW);
    assert.equal(reasonOf(reply), "recalled");
    const runs = dataRuns(fd, SIZE);
    assert.equal(runs.length, 1, JSON.stringify(runs));
    const [[a, b]] = runs;
    // The asked block, from its start; at most the rest of its chunk (verified bytes already in memory).
    assert.equal(a, CHUNK + 2 * BLOCK);
    assert.ok(b >= CHUNK + 3 * BLOCK && b <= 2 * CHUNK, `written up to ${b}`);
    assertNoWrongByte(fd, s.data);
    assert.equal(reply.bytesWritten, BigInt(b - a));
    assert.equal(reply.populatedBytes, BigInt(b - a));
    assert.equal(reply.fullyPopulated, false);
    // The data GET was one ranged GET of chunk 1.
    const dataGets = s.store.gets.filter((g) => g.key === "files/one");
    assert.deepEqual(
      dataGets.map((g) => [g.offset, g.length]),
      [[CHUNK, CHUNK]],
    );
  });

  test("a random ranged read fetches one chunk ahead; a window or a sequential read, the configured depth", async () => {
    /** How far the GETs a recall of `ranges` started reach, on a fresh cache. */
    const reach = async (ranges: Array<[number, number]>, how: { rangeOnly?: boolean; sequential?: boolean }) => {
      const s = await setup({ readaheadChunks: 3 });
      const fd = stub(SIZE);
      await s.handler.handle(request(s, fd, { mode: RecallMode.RANGE, ranges, ...how }), never);
      const gets = s.store.gets.filter((g) => g.key === "files/one");
      return Math.max(...gets.map((g) => g.offset + g.length));
    };
    // A reader's 4 KiB with nothing before it: its chunk and the next one, not three (a random
    // read of a big file would otherwise cost the store readaheadChunks chunks each time).
    assert.equal(await reach([[10, 4096]], {}), 2 * CHUNK);
    // A window of the listener's stream (range_only), or a read that follows the previous one:
    // the chunks after it, for what comes next.
    assert.equal(await reach([[0, CHUNK]], { rangeOnly: true }), 4 * CHUNK);
    assert.equal(await reach([[10, 4096]], { sequential: true }), 4 * CHUNK);
  });

  test("a ranged recall writes nothing past its chunk, even with the next chunk verified in memory", async () => {
    const s = await setup({ readaheadChunks: 1 });
    const first = stub(SIZE);
    await s.handler.handle(request(s, first, { mode: RecallMode.RANGE, ranges: [[0, 4096]] }), never);
    // Chunk 1 came in as readahead: a second stub of the same object finds both chunks in memory.
    for (let i = 0; i < 200 && !s.store.gets.some((g) => g.offset + g.length >= 2 * CHUNK); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise((r) => setTimeout(r, 50));
    const fd = stub(SIZE);
    const reply = await s.handler.handle(request(s, fd, { mode: RecallMode.RANGE, ranges: [[0, 4096]] }), never);
    assert.equal(reply.verdict, Verdict.ALLOW);
    const runs = dataRuns(fd, SIZE);
    assert.ok(runs.length > 0 && runs[runs.length - 1][1] <= CHUNK, `written: ${JSON.stringify(runs)}`);
    assertNoWrongByte(fd, s.data);
  });

  test("blocks that already hold data are neither fetched nor rewritten", async () => {
    const s = await setup();
    const fd = stub(SIZE);
    // Chunk 0 and the first block of chunk 1 are present already (with bytes the handler must leave alone).
    const mark = Buffer.alloc(CHUNK + BLOCK, 0x5a);
    assert.equal(writeSync(fd, mark, 0, mark.length, 0), mark.length);
    const reply = await s.handler.handle(
      request(s, fd, { mode: RecallMode.RANGE, ranges: [[CHUNK - 10, BLOCK + 20]] }),
      never,
    );
    assert.equal(reply.verdict, Verdict.ALLOW);
    const got = Buffer.alloc(mark.length);
    readSync(fd, got, 0, got.length, 0);
    assert.ok(got.equals(mark), "a present block was rewritten");
    assert.ok(!s.store.gets.some((g) => g.key === "files/one" && g.offset === 0), "chunk 0 was fetched");
    const next = Buffer.alloc(BLOCK);
    readSync(fd, next, 0, next.length, CHUNK + BLOCK);
    assert.ok(next.equals(s.data.subarray(CHUNK + BLOCK, CHUNK + 2 * BLOCK)), "the missing block was not written");
  });

  test("a block present in part (a partial write) is completed even when the asked bytes are there", async () => {
    const s = await setup();
    const fd = stub(SIZE);
    // The first half of block 1 of chunk 1 holds the right bytes; its second half is a hole.
    const half = s.data.subarray(CHUNK + BLOCK, CHUNK + BLOCK + BLOCK / 2);
    assert.equal(writeSync(fd, half, 0, half.length, CHUNK + BLOCK), half.length);
    const reply = await s.handler.handle(
      request(s, fd, { mode: RecallMode.RANGE, ranges: [[CHUNK + BLOCK, 4096]] }),
      never,
    );
    assert.equal(reply.verdict, Verdict.ALLOW);
    const got = Buffer.alloc(BLOCK);
    readSync(fd, got, 0, got.length, CHUNK + BLOCK);
    assert.ok(got.equals(s.data.subarray(CHUNK + BLOCK, CHUNK + 2 * BLOCK)), "the block was left with a hole");
    assertNoWrongByte(fd, s.data);
  });

  test("written bytes end on a block boundary (or the chunk's end): no block is left half written", async () => {
    const s = await setup();
    const fd = stub(SIZE);
    await s.handler.handle(request(s, fd, { mode: RecallMode.RANGE, ranges: [[0, 4096]] }), never);
    for (const [a, b] of dataRuns(fd, SIZE)) {
      assert.equal(a % BLOCK, 0, `data starts at ${a}`);
      assert.ok(b % BLOCK === 0 || b === SIZE || b % CHUNK === 0, `data ends at ${b}`);
    }
    assertNoWrongByte(fd, s.data);
  });

  test("a ranged recall next to a corrupted block writes the asked block and never the bad one", async () => {
    const s = await setup({ cacheBytes: CHUNK });
    const bad = 2 * CHUNK + BLOCK + 5;
    s.store.corrupt("b", "files/one", bad, s.archived.object.versionId);
    const fd = stub(SIZE);
    const reply = await s.handler.handle(request(s, fd, { mode: RecallMode.RANGE, ranges: [[2 * CHUNK, 10]] }), never);
    assert.equal(reply.verdict, Verdict.ALLOW);
    assert.deepEqual(dataRuns(fd, SIZE), [[2 * CHUNK, 2 * CHUNK + BLOCK]]);
    assertNoWrongByte(fd, s.data);
  });

  test("a whole recall writes every byte, verified, and syncs a complete file", async () => {
    const s = await setup();
    const fd = stub(SIZE);
    const reply = await s.handler.handle(request(s, fd, { mode: RecallMode.WHOLE }), never);
    assert.equal(reply.verdict, Verdict.ALLOW);
    assert.equal(reasonOf(reply), "recalled");
    assert.deepEqual(dataRuns(fd, SIZE), [[0, SIZE]]);
    assertNoWrongByte(fd, s.data);
    assert.equal(reply.bytesWritten, BigInt(SIZE));
    assert.equal(reply.fullyPopulated, true);
    assert.equal(reply.manifest, undefined, "not asked for");
  });

  test("a corrupted object is denied with checksum-mismatch and its bad block is never written", async () => {
    const s = await setup();
    const bad = 2 * CHUNK + BLOCK + 5;
    s.store.corrupt("b", "files/one", bad, s.archived.object.versionId);
    const fd = stub(SIZE);
    const reply = await s.handler.handle(request(s, fd, { mode: RecallMode.WHOLE }), never);
    assert.equal(reply.verdict, Verdict.DENY);
    assert.equal(reasonOf(reply), "checksum-mismatch");
    assert.equal(reply.errno, accessOutcome("checksum-mismatch").errno);
    assertNoWrongByte(fd, s.data);
    const blockStart = bad - (bad % BLOCK);
    assert.ok(native.seekHole(fd, blockStart) <= blockStart, "the corrupted block holds data");
  });

  test("a manifest that does not match the stub state is denied with checksum-mismatch; nothing is written", async () => {
    const s = await setup();
    s.store.corrupt("b", manifestKey("files/one"), 3);
    const fd = stub(SIZE);
    const reply = await s.handler.handle(
      request(s, fd, { mode: RecallMode.RANGE, ranges: [[0, 10]], wantManifest: true }),
      never,
    );
    assert.equal(reply.verdict, Verdict.DENY);
    assert.equal(reasonOf(reply), "checksum-mismatch");
    assert.deepEqual(dataRuns(fd, SIZE), []);
  });

  test("want_manifest: the reply carries the manifest bytes as stored", async () => {
    const s = await setup();
    const fd = stub(SIZE);
    const reply = await s.handler.handle(
      request(s, fd, { mode: RecallMode.RANGE, ranges: [[5, 5]], wantManifest: true }),
      never,
    );
    assert.equal(reply.verdict, Verdict.ALLOW);
    assert.ok(reply.manifest);
    assert.ok(Buffer.from(reply.manifest).equals(s.archived.manifest));
    // Read by the version id the stub state names.
    const mget = s.store.gets.find((g) => g.key === manifestKey("files/one"));
    assert.equal(mget?.versionId, s.archived.object.manifestVersionId);
  });

  test("a file of one small chunk is checked by its content hash: no manifest fetched or returned", async () => {
    const size = 100 * KiB;
    const s = await setup({ size });
    const fd = stub(size);
    const reply = await s.handler.handle(request(s, fd, { mode: RecallMode.WHOLE, wantManifest: true }), never);
    assert.equal(reply.verdict, Verdict.ALLOW);
    assert.equal(reply.manifest, undefined);
    assert.ok(!s.store.gets.some((g) => g.key === manifestKey("files/one")));
    assert.deepEqual(dataRuns(fd, size), [[0, size]]);
    assertNoWrongByte(fd, s.data);
  });

  test("a one-chunk file whose object is corrupted is denied (content hash)", async () => {
    const size = 100 * KiB;
    const s = await setup({ size });
    s.store.corrupt("b", "files/one", 99 * KiB, s.archived.object.versionId);
    const fd = stub(size);
    const reply = await s.handler.handle(request(s, fd, { mode: RecallMode.WHOLE }), never);
    assert.equal(reply.verdict, Verdict.DENY);
    assert.equal(reasonOf(reply), "checksum-mismatch");
    assert.deepEqual(dataRuns(fd, size), []);
  });

  test("an fd that is not the file the request names is a protocol error; nothing is written", async () => {
    const s = await setup();
    const named = stub(SIZE);
    const other = stub(SIZE);
    const req = request(s, named, { mode: RecallMode.WHOLE, requestId: offer(other) });
    const reply = await s.handler.handle(req, never);
    assert.equal(reply.verdict, Verdict.DENY);
    assert.equal(reasonOf(reply), "protocol-error");
    assert.deepEqual(dataRuns(other, SIZE), []);
    assert.deepEqual(dataRuns(named, SIZE), []);
    assert.equal(s.store.gets.length, 0);
  });

  test("a file whose size changed since release is denied with stub-changed", async () => {
    const s = await setup();
    const fd = stub(SIZE);
    const req = request(s, fd, { mode: RecallMode.WHOLE });
    req.file!.size = BigInt(SIZE + 1);
    const reply = await s.handler.handle(req, never);
    assert.equal(reply.verdict, Verdict.DENY);
    assert.equal(reasonOf(reply), "stub-changed");
    assert.deepEqual(dataRuns(fd, SIZE), []);
  });

  test("no fd for the request: denied with fd-missing after the wait", async () => {
    const s = await setup();
    const fd = stub(SIZE);
    const req = request(s, fd, { mode: RecallMode.WHOLE, requestId: 999_999n });
    const reply = await s.handler.handle(req, never);
    assert.equal(reply.verdict, Verdict.DENY);
    assert.equal(reasonOf(reply), "fd-missing");
  });

  test("a chunk GET that fails once is retried and the recall succeeds", async () => {
    const s = await setup();
    const fd = stub(SIZE);
    s.store.failNextGet(1, { key: "files/one" });
    const reply = await s.handler.handle(request(s, fd, { mode: RecallMode.RANGE, ranges: [[0, 1]] }), never);
    assert.equal(reply.verdict, Verdict.ALLOW);
    assertNoWrongByte(fd, s.data);
    assert.ok(native.seekData(fd, 0) === 0);
  });

  // Documents what the code does today: the manifest GET has no retry of its own (chunk GETs do).
  test("a manifest GET that fails is denied with store-unavailable", async () => {
    const s = await setup();
    const fd = stub(SIZE);
    s.store.failNextGet(1, { key: manifestKey("files/one") });
    const reply = await s.handler.handle(request(s, fd, { mode: RecallMode.RANGE, ranges: [[0, 1]] }), never);
    assert.equal(reply.verdict, Verdict.DENY);
    assert.equal(reasonOf(reply), "store-unavailable");
    assert.deepEqual(dataRuns(fd, SIZE), []);
  });
});
