// The fd inbox on a real SOCK_SEQPACKET socket in a temporary directory (no root: the
// expected peer uid is our own). An fd offered before or after take() reaches the taker; a
// take with no offer gives null after its wait; a peer of another uid is refused; a malformed
// message closes only the connection that sent it, with the fds that connection had parked.
import assert from "node:assert/strict";
import { mkdtempSync, openSync, closeSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, test } from "node:test";
import { pino } from "pino";
import * as native from "../../native/index.js";
import { FdMessageType, encodeFdHeader } from "../../proto/index.js";
import { FdInbox } from "../../recall-service/fd-inbox.js";
import { sendWithFds } from "../helpers/sockets.js";

const log = pino({ level: "silent" });
const uid = process.getuid?.() ?? 0;

let dir = "";
let file = "";
let inbox: FdInbox | null = null;
const opened: number[] = [];

before(() => {
  dir = mkdtempSync(join(tmpdir(), "fanrecall-fd-inbox-"));
  file = join(dir, "payload");
  writeFileSync(file, "payload");
});
after(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  inbox?.close();
  inbox = null;
  for (const fd of opened.splice(0)) native.close(fd);
});

function start(peerUid = uid, parkMs = 10_000): { inbox: FdInbox; path: string } {
  const path = join(dir, "fd.sock");
  inbox = new FdInbox({ path, peerUid, parkMs, log });
  return { inbox, path };
}

function connect(path: string): number {
  const fd = native.seqpacketConnect(path);
  opened.push(fd);
  return fd;
}

/** Offers a fresh fd of the payload file under `requestId`; returns its inode. */
function offer(conn: number, requestId: bigint): number {
  const fd = openSync(file, "r");
  try {
    assert.equal(native.sendWithFd(conn, encodeFdHeader({ type: FdMessageType.FD_OFFER, requestId }), fd), true);
    return native.fstat(fd).ino;
  } finally {
    closeSync(fd);
  }
}

async function until(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** True once the peer closed `conn` (reads EOF); fails the test after `ms`. */
async function closedByPeer(conn: number, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const msg = native.recvWithFd(conn, 64);
    if (msg?.eof) return;
    if (Date.now() > end) assert.fail("the inbox did not close the connection");
    await new Promise((r) => setTimeout(r, 5));
  }
}

function expectFile(fd: number | null, ino: number): void {
  assert.notEqual(fd, null);
  try {
    assert.equal(native.fstat(fd!).ino, ino);
  } finally {
    native.close(fd!);
  }
}

describe("fd inbox", () => {
  test("an fd offered before take() is parked and handed out", async () => {
    const { inbox, path } = start();
    const conn = connect(path);
    await until(() => inbox.connections === 1, "the connection");
    const ino = offer(conn, 41n);
    // Give the poller time to file it before anyone asks.
    await new Promise((r) => setTimeout(r, 50));
    expectFile(await inbox.take(41n, 0), ino);
    // Taken once: it is gone.
    assert.equal(await inbox.take(41n, 20), null);
  });

  test("a take() waiting when the fd arrives gets it", async () => {
    const { inbox, path } = start();
    const conn = connect(path);
    const taking = inbox.take(42n, 2000);
    await new Promise((r) => setTimeout(r, 30));
    const ino = offer(conn, 42n);
    expectFile(await taking, ino);
  });

  test("take() gives null when no fd arrives in time, and an fd for another request does not count", async () => {
    const { inbox, path } = start();
    const conn = connect(path);
    offer(conn, 7n);
    const t0 = Date.now();
    assert.equal(await inbox.take(8n, 80), null);
    assert.ok(Date.now() - t0 >= 70);
    const fd = await inbox.take(7n, 500);
    assert.notEqual(fd, null);
    native.close(fd!);
  });

  test("an unclaimed fd is closed after parkMs", async () => {
    const { inbox, path } = start(uid, 30);
    const conn = connect(path);
    offer(conn, 9n);
    await new Promise((r) => setTimeout(r, 120));
    assert.equal(await inbox.take(9n, 0), null);
  });

  test("a peer whose uid is not the listener's is refused", async () => {
    const { inbox, path } = start(uid + 1);
    let changes = 0;
    inbox.watchConnections(() => changes++);
    const conn = connect(path);
    await closedByPeer(conn);
    assert.equal(inbox.connections, 0);
    assert.equal(changes, 0);
    assert.equal(await inbox.take(5n, 50), null);
  });

  const garbage: Array<[string, (conn: number) => void]> = [
    ["bad magic", (c) => sendRaw(c, Buffer.alloc(16, 0xee), true)],
    [
      "short header",
      (c) => sendRaw(c, encodeFdHeader({ type: FdMessageType.FD_OFFER, requestId: 3n }).subarray(0, 8), true),
    ],
    [
      "unknown type",
      (c) => sendRaw(c, withByte(encodeFdHeader({ type: FdMessageType.FD_OFFER, requestId: 3n }), 3, 9), true),
    ],
    ["request id 0", (c) => sendRaw(c, encodeFdHeader({ type: FdMessageType.FD_OFFER, requestId: 0n }), true)],
    ["no fd", (c) => sendRaw(c, encodeFdHeader({ type: FdMessageType.FD_OFFER, requestId: 3n }), false)],
    ["two fds", (c) => sendTwo(c, encodeFdHeader({ type: FdMessageType.FD_OFFER, requestId: 3n }))],
    ["oversized", (c) => sendRaw(c, Buffer.alloc(64, 1), true)],
  ];
  for (const [name, send] of garbage) {
    test(`garbage (${name}) closes only the connection that sent it`, async () => {
      const { inbox, path } = start();
      const good = connect(path);
      const bad = connect(path);
      await until(() => inbox.connections === 2, "two connections");
      const goodIno = offer(good, 100n);
      offer(bad, 200n);
      await new Promise((r) => setTimeout(r, 30));
      send(bad);
      await closedByPeer(bad);
      assert.equal(inbox.connections, 1);
      // The bad connection's parked fd went with it; the good one's is still there.
      assert.equal(await inbox.take(200n, 30), null);
      expectFile(await inbox.take(100n, 500), goodIno);
      // And the good connection still works.
      const again = offer(good, 101n);
      expectFile(await inbox.take(101n, 500), again);
    });
  }

  test("close() answers waiting takes with null", async () => {
    const { inbox: box } = start();
    const waiting = box.take(77n, 5000);
    inbox = null;
    box.close();
    assert.equal(await waiting, null);
  });
});

function withByte(b: Buffer, at: number, value: number): Buffer {
  const c = Buffer.from(b);
  c[at] = value;
  return c;
}

function sendRaw(conn: number, data: Buffer, withFd: boolean): void {
  const fd = openSync(file, "r");
  try {
    assert.equal(native.sendWithFd(conn, data, withFd ? fd : -1), true);
  } finally {
    closeSync(fd);
  }
}

function sendTwo(conn: number, data: Buffer): void {
  const a = openSync(file, "r");
  const b = openSync(file, "r");
  try {
    assert.equal(sendWithFds(conn, data, [a, b]), true);
  } finally {
    closeSync(a);
    closeSync(b);
  }
}
