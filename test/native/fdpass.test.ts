// SOCK_SEQPACKET sockets, SO_PEERCRED and SCM_RIGHTS fd passing (no root needed).
import assert from "node:assert/strict";
import { mkdtempSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { NATIVE_FACADE_URL, nodeEvalArgv, runChild } from "../helpers/child.js";
import {
  FAN,
  close,
  datagramSendTo,
  fstat,
  isNativeError,
  peerCred,
  recvWithFd,
  seqpacketAccept,
  seqpacketConnect,
  seqpacketListen,
  sendWithFd,
  openPath,
} from "../../native/index.js";
import { datagramBind, sendWithFds, seqpacketPair } from "../helpers/sockets.js";

let dir = "";
let file = "";

before(() => {
  dir = mkdtempSync(join(tmpdir(), "fanrecall-fdpass-"));
  file = join(dir, "payload");
  writeFileSync(file, "payload-bytes");
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function withPair(fn: (a: number, b: number) => void): void {
  const [a, b] = seqpacketPair();
  try {
    fn(a, b);
  } finally {
    close(a);
    close(b);
  }
}

function closeAll(fds: number[]): void {
  for (const fd of fds) close(fd);
}

test("an fd sent with sendWithFd arrives as a new fd for the same file", () => {
  withPair((a, b) => {
    const fd = openPath(file, FAN.O_RDONLY);
    try {
      assert.equal(sendWithFd(a, Buffer.from("offer"), fd), true);
    } finally {
      close(fd);
    }
    const msg = recvWithFd(b, 64);
    assert.ok(msg);
    assert.equal(msg.data.toString(), "offer");
    assert.equal(msg.truncated, false);
    assert.equal(msg.eof, false);
    assert.equal(msg.fds.length, 1);
    const [got] = msg.fds;
    assert.ok(got !== undefined);
    try {
      const buf = Buffer.alloc(32);
      assert.equal(readSync(got, buf, 0, buf.length, 0), 13);
      assert.equal(buf.subarray(0, 13).toString(), "payload-bytes");
    } finally {
      close(got);
    }
  });
});

test("fd -1 sends plain data; an empty queue reads as null", () => {
  withPair((a, b) => {
    assert.equal(recvWithFd(b, 64), null);
    assert.equal(sendWithFd(a, Buffer.from("no fd"), -1), true);
    const msg = recvWithFd(b, 64);
    assert.deepEqual(msg && { data: msg.data.toString(), fds: msg.fds }, { data: "no fd", fds: [] });
    assert.equal(recvWithFd(b, 64), null);
  });
});

test("a message longer than maxLen is reported truncated (record boundary kept)", () => {
  withPair((a, b) => {
    sendWithFd(a, Buffer.alloc(100, "x"), -1);
    sendWithFd(a, Buffer.from("next"), -1);
    const msg = recvWithFd(b, 10);
    assert.ok(msg);
    assert.equal(msg.data.length, 10);
    assert.equal(msg.truncated, true);
    const next = recvWithFd(b, 10);
    assert.equal(next?.data.toString(), "next");
    assert.equal(next?.truncated, false);
  });
});

test("extra fds are all returned; more than the room of 4 sets truncated", () => {
  withPair((a, b) => {
    const fds = [0, 1, 2, 3, 4, 5].map(() => openPath(file, FAN.O_RDONLY));
    try {
      const [f0, f1] = fds;
      assert.ok(f0 !== undefined && f1 !== undefined);
      sendWithFds(a, Buffer.from("two"), [f0, f1]);
      sendWithFds(a, Buffer.from("six"), fds);
    } finally {
      closeAll(fds);
    }
    const two = recvWithFd(b, 16);
    assert.ok(two);
    assert.equal(two.fds.length, 2);
    assert.equal(two.truncated, false);
    for (const fd of two.fds) assert.equal(fstat(fd).size, 13);
    closeAll(two.fds);
    const six = recvWithFd(b, 16);
    assert.ok(six);
    assert.equal(six.data.toString(), "six");
    assert.equal(six.truncated, true, "MSG_CTRUNC");
    assert.equal(six.fds.length, 4, "the kernel installs only what fits");
    closeAll(six.fds);
  });
});

test("a closed peer reads as eof; sending to it is EPIPE without SIGPIPE", () => {
  const [a, b] = seqpacketPair();
  close(a);
  try {
    assert.deepEqual(recvWithFd(b, 16), { data: Buffer.alloc(0), fds: [], truncated: false, eof: true });
    assert.throws(
      () => sendWithFd(b, Buffer.from("x"), -1),
      (e: unknown) => isNativeError(e, "EPIPE") && e.syscall === "sendmsg",
    );
  } finally {
    close(b);
  }
});

test("a full socket makes sendWithFd return false; empty messages are refused", () => {
  withPair((a, b) => {
    const chunk = Buffer.alloc(32 * 1024);
    let sent = 0;
    while (sendWithFd(a, chunk, -1)) {
      sent++;
      assert.ok(sent < 10_000, "socket never filled");
    }
    assert.ok(sent > 0);
    assert.ok(recvWithFd(b, chunk.length));
    assert.throws(
      () => sendWithFd(a, new Uint8Array(0), -1),
      (e: unknown) => isNativeError(e, "EINVAL"),
    );
    assert.throws(() => recvWithFd(b, 0), RangeError);
  });
});

test("seqpacketListen/Accept/Connect and peerCred at a filesystem path", () => {
  const path = join(dir, "sock");
  const listenFd = seqpacketListen(path);
  try {
    assert.equal(seqpacketAccept(listenFd), -1, "nothing pending yet");
    assert.throws(
      () => seqpacketListen(path),
      (e: unknown) => isNativeError(e, "EADDRINUSE") && e.syscall === "bind",
    );
    const client = seqpacketConnect(path);
    const server = seqpacketAccept(listenFd);
    try {
      assert.ok(server >= 0);
      const cred = peerCred(server);
      assert.deepEqual(cred, { pid: process.pid, uid: process.getuid?.(), gid: process.getgid?.() });
      assert.equal(peerCred(client).pid, process.pid);
      assert.equal(recvWithFd(client, 8), null, "connected fd is non-blocking");
      sendWithFd(client, Buffer.from("hi"), -1);
      assert.equal(recvWithFd(server, 8)?.data.toString(), "hi");
    } finally {
      close(client);
      close(server);
    }
  } finally {
    close(listenFd);
  }
  assert.throws(
    () => seqpacketConnect(join(dir, "none")),
    (e: unknown) => isNativeError(e, "ENOENT") && e.syscall === "connect",
  );
  assert.throws(
    () => seqpacketListen(join(dir, "x".repeat(200))),
    (e: unknown) => isNativeError(e, "ENAMETOOLONG"),
  );
  assert.throws(
    () => peerCred(-1),
    (e: unknown) => isNativeError(e, "EBADF") && e.syscall === "getsockopt",
  );
});

test("connecting to a peer that never accepts fails with EAGAIN at once, never blocks", async () => {
  // In a child: a blocking connect would hang it, and the timeout below then fails the test.
  const path = join(dir, "never-accepts");
  const script = `
    import { seqpacketConnect, seqpacketListen } from ${JSON.stringify(NATIVE_FACADE_URL)};
    seqpacketListen(${JSON.stringify(path)}, 1);
    for (let i = 0; i < 64; i++) {
      try { seqpacketConnect(${JSON.stringify(path)}); }
      catch (e) { console.log(e.code, e.syscall, i > 0); process.exit(0); }
    }
    console.log("connected 64 times");
  `;
  const r = await runChild(nodeEvalArgv(script), { timeoutMs: 15_000 });
  assert.equal(r.stdout.toString().trim(), "EAGAIN connect true", r.stderr);
});

test("datagramSendTo delivers text and an fd to a datagramBind socket, by path and abstract name", () => {
  const fileFd = openPath(file, FAN.O_RDONLY);
  const abstract = `@fanrecall-test-${process.pid}`;
  for (const where of [join(dir, "notify.sock"), abstract]) {
    const sock = datagramBind(where);
    try {
      assert.equal(recvWithFd(sock, 64), null, "nothing queued yet");
      datagramSendTo(where, Buffer.from("FDSTORE=1\nFDNAME=g\n"), [fileFd]);
      datagramSendTo(where, Buffer.from("READY=1\n"), []);
      const first = recvWithFd(sock, 4096)!;
      assert.equal(first.data.toString(), "FDSTORE=1\nFDNAME=g\n");
      assert.equal(first.fds.length, 1);
      const buf = Buffer.alloc(7);
      assert.equal(readSync(first.fds[0], buf, 0, buf.length, 0), 7);
      assert.equal(buf.toString(), "payload");
      close(first.fds[0]);
      const second = recvWithFd(sock, 4096)!;
      assert.equal(second.data.toString(), "READY=1\n");
      assert.deepEqual(second.fds, []);
    } finally {
      close(sock);
    }
  }
  close(fileFd);
  assert.throws(
    () => datagramSendTo(join(dir, "nobody-listens.sock"), Buffer.from("READY=1"), []),
    (err: unknown) => isNativeError(err) && err.code === "ENOENT" && err.syscall === "sendmsg",
  );
  assert.throws(() => datagramSendTo(join(dir, "x"), Buffer.alloc(0), []), /empty message/);
});
