// The one SOCK_SEQPACKET server (ipc/seqpacket-server.ts) on a real socket in a temporary
// directory, without root: our own uid is the allowed one, or (to be refused) a uid that is
// not ours. A stale file at the path is replaced, the directory and socket get their modes,
// a message reaches the caller, drop() and close() close connections (each reported once),
// a refused peer is closed at once and never reaches the caller, and close() unlinks the path
// unless it is kept for a successor.
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, test } from "node:test";
import * as native from "../../native/index.js";
import { SeqpacketServer } from "../../ipc/seqpacket-server.js";
import type { SeqpacketConn, SeqpacketServerOptions } from "../../ipc/seqpacket-server.js";
import { waitFor } from "../helpers/procs.js";

const uid = process.getuid?.() ?? 0;

let dir = "";
let server: SeqpacketServer | null = null;
const opened: number[] = [];

before(() => {
  dir = mkdtempSync(join(tmpdir(), "fanrecall-seqpacket-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  server?.close();
  server = null;
  for (const fd of opened.splice(0)) native.close(fd);
});

interface Seen {
  readonly accepted: SeqpacketConn[];
  readonly dropped: SeqpacketConn[];
  readonly refused: native.PeerCred[];
  readonly messages: string[];
}

/** A server on DIR/sub/s.sock that records what it is told and drops a connection on "bye" or EOF. */
function start(extra: Partial<SeqpacketServerOptions> = {}): { path: string; seen: Seen; srv: SeqpacketServer } {
  const path = join(dir, "sub", "s.sock");
  const seen: Seen = { accepted: [], dropped: [], refused: [], messages: [] };
  const srv: SeqpacketServer = new SeqpacketServer({
    path,
    backlog: 4,
    dirMode: 0o700,
    socketMode: 0o600,
    peerUid: uid,
    onReadable: (conn) => {
      const msg = native.recvWithFd(conn.fd, 64);
      if (msg === null) return;
      if (msg.eof || msg.data.toString() === "bye") srv.drop(conn);
      else seen.messages.push(msg.data.toString());
    },
    onRefused: (peer) => seen.refused.push(peer),
    onAccepted: (conn) => seen.accepted.push(conn),
    onDropped: (conn) => seen.dropped.push(conn),
    ...extra,
  });
  server = srv;
  return { path, seen, srv };
}

function connect(path: string): number {
  const fd = native.seqpacketConnect(path);
  opened.push(fd);
  return fd;
}

/** Resolves once the server closed `conn` (it reads EOF). */
async function closedByServer(conn: number): Promise<void> {
  const msg = await native.recvOnce(conn, 64, 2000);
  assert.equal(msg.eof, true);
}

describe("seqpacket server", () => {
  test("replaces a stale file at its path and sets the directory's and socket's modes", () => {
    const path = join(dir, "sub", "s.sock");
    mkdirSync(join(dir, "sub"), { mode: 0o755 });
    chmodSync(join(dir, "sub"), 0o755);
    writeFileSync(path, "stale");
    start();
    assert.ok(statSync(path).isSocket());
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, "sub")).mode & 0o777, 0o700);
  });

  test("accepts a peer of the allowed uid and hands its messages to the caller", async () => {
    const { path, seen, srv } = start();
    const conn = connect(path);
    await waitFor("the connection", () => seen.accepted.length === 1, 2000);
    assert.equal(seen.accepted[0].peer.uid, uid);
    assert.equal(seen.accepted[0].peer.pid, process.pid);
    assert.equal(srv.connections, 1);
    native.sendWithFd(conn, Buffer.from("hello"), -1);
    await waitFor("the message", () => seen.messages.length === 1, 2000);
    assert.deepEqual(seen.messages, ["hello"]);
  });

  test("drop() closes only that connection, once, and it is no longer open", async () => {
    const { path, seen, srv } = start();
    const bye = connect(path);
    const stay = connect(path);
    await waitFor("two connections", () => seen.accepted.length === 2, 2000);
    native.sendWithFd(bye, Buffer.from("bye"), -1);
    await closedByServer(bye);
    assert.equal(seen.dropped.length, 1);
    const gone = seen.dropped[0];
    assert.equal(srv.isOpen(gone), false);
    assert.equal(srv.drop(gone), false, "a second drop does nothing");
    assert.equal(seen.dropped.length, 1);
    assert.equal(srv.connections, 1);
    native.sendWithFd(stay, Buffer.from("still here"), -1);
    await waitFor("the other connection's message", () => seen.messages.length === 1, 2000);
  });

  test("a peer that closes is dropped when the caller reads its EOF", async () => {
    const { path, seen, srv } = start();
    const conn = connect(path);
    await waitFor("the connection", () => seen.accepted.length === 1, 2000);
    native.close(opened.splice(opened.indexOf(conn), 1)[0]);
    await waitFor("the drop", () => seen.dropped.length === 1, 2000);
    assert.equal(srv.connections, 0);
  });

  test("a peer of another uid is closed at once and never reaches the caller", async () => {
    const { path, seen, srv } = start({ peerUid: uid + 1 });
    const conn = connect(path);
    await closedByServer(conn);
    assert.equal(seen.refused.length, 1);
    assert.equal(seen.refused[0].uid, uid);
    assert.deepEqual(seen.accepted, []);
    assert.deepEqual(seen.dropped, []);
    assert.equal(srv.connections, 0);
  });

  test("close() drops every connection and unlinks the path", async () => {
    const { path, seen, srv } = start();
    const a = connect(path);
    const b = connect(path);
    await waitFor("two connections", () => seen.accepted.length === 2, 2000);
    server = null;
    srv.close();
    assert.equal(existsSync(path), false);
    assert.equal(seen.dropped.length, 2);
    assert.equal(srv.connections, 0);
    await closedByServer(a);
    await closedByServer(b);
    assert.throws(() => native.seqpacketConnect(path));
  });

  test('close("keep") leaves the path to a successor', () => {
    const { path, srv } = start();
    server = null;
    srv.close("keep");
    assert.equal(existsSync(path), true);
    rmSync(path);
  });
});
