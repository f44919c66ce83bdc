// The read-ahead stream's rules (listener/read-ahead.ts), with a recorded stand-in for the
// window recalls and the check: two reads that follow each other start it, windows are whole
// chunks in order with at most three in flight and never more than its reach past the reader,
// settle waits for the windows in flight and starts none after, a failed window ends it for
// good, and a reader waits for the window that brings its bytes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { openSync } from "node:fs";
import pino from "pino";
import type { FdStat } from "../../native/index.js";
import { ReadAhead } from "../../listener/read-ahead.js";
import type { ByteRange } from "../../listener/recall-runner.js";
import type { ListenerReason } from "../../listener/failure-policy.js";
import type { StubState } from "../../listener/stub-state.js";

const MiB = 1024 * 1024;
const CHUNK = 4 * MiB;
const SIZE = 256 * MiB;
const tick = () => new Promise((r) => setTimeout(r, 5));

interface Window {
  readonly range: ByteRange;
  readonly answer: (reason: ListenerReason) => void;
}

function harness() {
  const windows: Window[] = [];
  let open = 0;
  const present = new Set<number>();
  const ahead = new ReadAhead({
    log: pino({ level: "silent" }),
    content: {
      check: async (_fd, _key, _stub, from, to) => {
        for (let c = Math.floor(from / CHUNK); c * CHUNK < to; c++) {
          if (!present.has(c)) return { ok: false, why: "hole", bad: [] };
        }
        return { ok: true };
      },
    },
    recallWindow: (_rw, _st, _stub, range) =>
      new Promise<ListenerReason>((answer) => {
        open++;
        windows.push({
          range,
          answer: (reason) => {
            open--;
            if (reason === "recalled") {
              for (let c = range.offset / CHUNK; c * CHUNK < range.offset + range.count; c++) present.add(c);
            }
            answer(reason);
          },
        });
      }),
    finish: async () => undefined,
  });
  const st = { dev: 1, ino: 2, size: SIZE } as FdStat;
  const stub = { chunkSize: CHUNK, size: SIZE } as StubState;
  const start = { key: "1:2", st, stub, who: () => null, openWritable: () => openSync("/dev/null", "r") };
  const read = (offset: number, count = MiB) => ahead.observe({ offset, count }, start);
  /** Settles the stream, answering every window still in flight. */
  const end = async () => {
    const settled = ahead.settle("1:2");
    for (const w of windows) if (!present.has(w.range.offset / CHUNK)) w.answer("recalled");
    await settled;
  };
  return { ahead, windows, read, present, end, start, inFlight: () => open };
}

test("a single read, or reads that do not follow each other, start no stream", () => {
  const h = harness();
  assert.equal(h.read(0), false, "a first read follows nothing");
  assert.equal(h.read(10 * MiB), false);
  assert.equal(h.read(3 * MiB), false);
  assert.equal(h.ahead.size, 0);
  assert.equal(h.windows.length, 0);
});

test("a read that follows the previous one is said sequential, with or without a stream", () => {
  const h = harness();
  h.read(0);
  assert.equal(h.read(MiB), true, "the read that starts the stream");
  assert.equal(h.read(2 * MiB), true, "a read the stream serves");
  // Past the cap of streams (another file's reads): sequential still, with no stream.
  const small = { ...h.start, key: "1:3", st: { dev: 1, ino: 3, size: 4 * MiB } as FdStat };
  h.ahead.observe({ offset: 0, count: MiB }, small);
  assert.equal(h.ahead.observe({ offset: MiB, count: MiB }, small), true, "too small for a stream, still sequential");
  assert.equal(h.ahead.observe({ offset: 0, count: MiB }, small), false, "back to the start");
});

test("two reads that follow each other start windows of whole chunks, in order, three at a time", async () => {
  const h = harness();
  h.read(0);
  h.read(MiB);
  await tick();
  assert.equal(h.ahead.size, 1);
  assert.deepEqual(
    h.windows.map((w) => w.range),
    [
      { offset: 0, count: 8 * MiB },
      { offset: 8 * MiB, count: 8 * MiB },
      { offset: 16 * MiB, count: 8 * MiB },
    ],
  );
  h.windows[0].answer("recalled");
  await tick();
  assert.equal(h.windows.length, 4);
  assert.deepEqual(h.windows[3].range, { offset: 24 * MiB, count: 8 * MiB });
  assert.ok(h.inFlight() <= 3);
  await h.end();
});

test("the stream goes no further than its reach past the furthest byte asked", async () => {
  const h = harness();
  h.read(0);
  h.read(MiB);
  for (let i = 0; i < 40; i++) {
    await tick();
    for (const w of h.windows) if (!h.present.has(w.range.offset / CHUNK)) w.answer("recalled");
  }
  const last = h.windows[h.windows.length - 1].range;
  assert.ok(last.offset + last.count <= 2 * MiB + 64 * MiB + 8 * MiB, `window up to ${last.offset + last.count}`);
  const before = h.windows.length;
  h.read(40 * MiB, MiB);
  await tick();
  assert.ok(h.windows.length > before, "the reader advanced and the stream did not follow");
  await h.end();
});

test("settle waits for the windows in flight and starts none after", async () => {
  const h = harness();
  h.read(0);
  h.read(MiB);
  await tick();
  let settled = false;
  const p = h.ahead.settle("1:2").then(() => (settled = true));
  await tick();
  assert.equal(settled, false, "settled while windows were in flight");
  const asked = h.windows.length;
  for (const w of h.windows) w.answer("recalled");
  await p;
  assert.equal(h.windows.length, asked, "a window started after settle");
  assert.equal(h.ahead.size, 0);
});

test("settle with a deadline gives up at the deadline, and the stream starts no window after", async () => {
  const h = harness();
  h.read(0);
  h.read(MiB);
  await tick();
  assert.equal(await h.ahead.settle("1:2", Date.now() + 20), false);
  const asked = h.windows.length;
  for (const w of h.windows) w.answer("recalled");
  await tick();
  assert.equal(h.windows.length, asked);
});

test("a failed window ends the stream, a waiting reader is let go, and the inode gets no new stream for a while", async () => {
  const h = harness();
  h.read(0);
  h.read(MiB);
  await tick();
  const waiting = h.ahead.waitFor("1:2", -1, 2 * MiB, 3 * MiB, Date.now() + 5000);
  h.windows[0].answer("checksum-mismatch");
  assert.equal(await waiting, false);
  for (const w of h.windows.slice(1)) w.answer("recalled");
  await tick();
  assert.equal(h.ahead.size, 0);
  h.read(2 * MiB);
  h.read(3 * MiB);
  await tick();
  assert.equal(h.ahead.size, 0, "a stream started again after a failed window");
});

test("a reader waits for the window that brings its bytes", async () => {
  const h = harness();
  h.read(0);
  h.read(MiB);
  await tick();
  let done: boolean | null = null;
  void h.ahead.waitFor("1:2", -1, 9 * MiB, 10 * MiB, Date.now() + 5000).then((r) => (done = r));
  h.windows[0].answer("recalled");
  await tick();
  assert.equal(done, null, "let go before its window came");
  h.windows[1].answer("recalled");
  await tick();
  assert.equal(done, true);
  await h.end();
});

test("one uid holds at most half the streams: another user's sequential reader still gets one", () => {
  const h = harness();
  const as = (uid: number, ino: number) => ({
    key: `1:${ino}`,
    st: { dev: 1, ino, size: SIZE } as FdStat,
    stub: { chunkSize: CHUNK, size: SIZE } as StubState,
    who: () => ({ pid: 100 + ino, uid, command: "dd", cgroup: "/" }),
    openWritable: () => openSync("/dev/null", "r"),
  });
  const sequential = (uid: number, ino: number) => {
    h.ahead.observe({ offset: 0, count: MiB }, as(uid, ino));
    h.ahead.observe({ offset: MiB, count: MiB }, as(uid, ino));
  };
  for (let ino = 10; ino < 20; ino++) sequential(1000, ino);
  assert.equal(h.ahead.size, 4, "one user's ten sequential readers");
  sequential(2000, 30);
  assert.equal(h.ahead.size, 5, "another user's reader got no stream");
});
