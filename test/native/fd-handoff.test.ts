// The recall path end to end at the syscall level (root): a pre-content event fd is passed
// over SCM_RIGHTS on a SOCK_SEQPACKET socket to an unprivileged child (uid 65534, no
// capabilities), which fills the page through it; the listener then allows and the reader
// sees exactly those bytes.
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AT_FDCWD,
  FAN,
  close,
  fanotifyInit,
  fanotifyMark,
  fanotifyReadEvents,
  fanotifyRespond,
  peerCred,
  recvWithFd,
  seqpacketAccept,
  seqpacketListen,
  sendWithFd,
  type FanEvent,
} from "../../native/index.js";
import { NATIVE_FACADE_URL, NOBODY, nodeEvalArgv, runAsNobody, spawnAsNobody, type Spawned } from "../helpers/child.js";
import { makeExt4 } from "../helpers/loop-fs.js";
import { rootTest } from "../helpers/root.js";
import { waitReadable } from "../helpers/wait-readable.js";

const PAGE = 4096;

/** Child (uid 65534): connect, take one fd, pwrite the page through it, report back. */
function fillerScript(socketPath: string): string {
  return `
    import { FdPoller, close, recvWithFd, sendWithFd, seqpacketConnect } from ${JSON.stringify(NATIVE_FACADE_URL)};
    import { writeSync } from "node:fs";
    const sock = seqpacketConnect(${JSON.stringify(socketPath)});
    const poller = new FdPoller(sock, () => {
      const msg = recvWithFd(sock, 65536);
      if (msg === null) return;
      poller.close();
      if (msg.eof || msg.truncated || msg.fds.length !== 1) {
        console.error('bad message', msg);
        process.exit(2);
      }
      const [fd] = msg.fds;
      const { offset, text } = JSON.parse(msg.data.toString());
      const data = Buffer.from(text);
      const written = writeSync(fd, data, 0, data.length, offset);
      close(fd);
      sendWithFd(sock, Buffer.from(JSON.stringify({ written, uid: process.getuid() })), -1);
      close(sock);
    });
    poller.start();
  `;
}

rootTest(
  "event fd handed to an unprivileged process over SCM_RIGHTS",
  async (t) => {
    const fs = await makeExt4();
    const sockDir = mkdtempSync(join(tmpdir(), "fanrecall-sock-"));
    chmodSync(sockDir, 0o755);
    const socketPath = join(sockDir, "fd.sock");
    const children: Spawned[] = [];
    const open: number[] = [];
    const pending = new Set<number>();
    const group = fanotifyInit(
      FAN.FAN_CLASS_PRE_CONTENT | FAN.FAN_CLOEXEC | FAN.FAN_NONBLOCK,
      FAN.O_RDWR | FAN.O_LARGEFILE,
    );
    try {
      const listenFd = seqpacketListen(socketPath);
      open.push(listenFd);
      chmodSync(socketPath, 0o666);

      await t.test("pwrite through the passed fd fills the stub; the reader sees those bytes", async () => {
        const stub = join(fs.dir, "stub.bin");
        writeFileSync(stub, "", { mode: 0o644 });
        truncateSync(stub, 16 * PAGE);
        fanotifyMark(group, FAN.FAN_MARK_ADD | FAN.FAN_MARK_INODE, FAN.FAN_PRE_ACCESS, AT_FDCWD, stub);

        const filler = spawnAsNobody(nodeEvalArgv(fillerScript(socketPath)), { timeoutMs: 20_000 });
        children.push(filler);
        await waitReadable(listenFd, 10_000);
        const conn = seqpacketAccept(listenFd);
        assert.ok(conn >= 0);
        open.push(conn);
        assert.deepEqual(peerCred(conn), { pid: filler.pid, uid: NOBODY, gid: NOBODY });

        const reader = spawnAsNobody(["dd", `if=${stub}`, `bs=${PAGE}`, "skip=1", "count=1", "status=none"]);
        children.push(reader);
        await waitReadable(group, 5_000);
        const events: FanEvent[] = fanotifyReadEvents(group);
        for (const ev of events) pending.add(ev.fd);
        assert.equal(events.length, 1);
        const [ev] = events;
        assert.ok(ev);
        assert.equal(ev.pid, reader.pid);
        assert.deepEqual(ev.range, { offset: PAGE, count: PAGE });

        const text = "fanrecall:".repeat(PAGE).slice(0, PAGE);
        assert.equal(sendWithFd(conn, Buffer.from(JSON.stringify({ offset: ev.range.offset, text })), ev.fd), true);
        await waitReadable(conn, 15_000);
        const ack = recvWithFd(conn, 1024);
        assert.ok(ack && !ack.eof, "filler acknowledged");
        assert.deepEqual(JSON.parse(ack.data.toString()), { written: PAGE, uid: NOBODY });
        assert.deepEqual(fanotifyReadEvents(group), [], "writes through the event fd raise no event");

        fanotifyRespond(group, ev.fd, FAN.FAN_ALLOW);
        pending.delete(ev.fd);
        close(ev.fd);
        const read = await reader.result;
        assert.equal(read.code, 0, read.stderr);
        assert.equal(read.stdout.toString(), text);
        const fill = await filler.result;
        assert.equal(fill.code, 0, fill.stderr);
      });

      await t.test("an unprivileged process cannot create a pre-content group (EPERM)", async () => {
        const script = `
          import { FAN, fanotifyInit } from ${JSON.stringify(NATIVE_FACADE_URL)};
          try { fanotifyInit(FAN.FAN_CLASS_PRE_CONTENT, FAN.O_RDWR); console.log('created'); }
          catch (e) { console.log(e.code, e.errno, e.syscall); }
        `;
        const result = await runAsNobody(nodeEvalArgv(script), { timeoutMs: 15_000 });
        assert.equal(result.stdout.toString().trim(), "EPERM 1 fanotify_init", result.stderr);
      });
    } finally {
      for (const fd of pending) {
        try {
          fanotifyRespond(group, fd, FAN.FAN_ALLOW);
        } catch {
          // Closing the group below allows it anyway.
        }
        close(fd);
      }
      close(group);
      for (const fd of open) close(fd);
      for (const c of children) c.kill();
      rmSync(sockDir, { recursive: true, force: true });
      await fs.cleanup();
    }
  },
  { timeout: 45_000 },
);
