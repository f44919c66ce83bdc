// The two halves run the way deploy/systemd runs them (no `fanrecall start`, no holder), with
// this test playing systemd's part of the protocol: a notify socket that receives READY=1,
// STOPPING=1, FDSTORE=1 (with the listener's fanotify group fd, which the test then keeps, as
// systemd's fd store does) and FDSTOREREMOVE=1; and a restart that passes the kept fd back as
// fd 3 with LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID. The kernel, the fanotify group, the store
// (s3rver) and the readers (cat as uid 65534) are real.
//
// The point: a listener SIGKILLed while readers are held must not let them through onto a
// stub's zeros; the restarted listener takes the group over and serves them.
import { after, before, describe } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as native from "../../native/index.js";
import { isRoot, rootTest } from "../helpers/root.js";
import { runAsNobody, runChild, setprivAs, spawnAsNobody, spawnChild } from "../helpers/child.js";
import type { ChildResult, Spawned } from "../helpers/child.js";
import { makeExt4 } from "../helpers/loop-fs.js";
import { datagramBind } from "../helpers/sockets.js";
import type { Ext4 } from "../helpers/loop-fs.js";
import { startS3rver } from "../helpers/object-server.js";
import type { ObjectServer } from "../helpers/object-server.js";
import { BIN, recallUser } from "../helpers/fanrecall-instance.js";
import { checkReaders, writeRandomFiles } from "../helpers/reader-files.js";
import { recallGrpcSocketPath, recallSocketDir } from "../../ipc/run-dir.js";

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One notify datagram: its KEY=VALUE fields and the fds that came with it. */
type Notice = { fields: Map<string, string>; fds: number[] };

describe("systemd: notify protocol and fd store", () => {
  let fs: Ext4;
  let store: ObjectServer;
  let dir: string;
  let runDir: string;
  let notifyPath: string;
  let notifySock = -1;
  let recallService: Spawned | undefined;
  const kept: number[] = [];

  async function nextNotice(timeoutMs = 20_000): Promise<Notice> {
    const msg = await native.recvOnce(notifySock, 4096, timeoutMs);
    const fields = new Map<string, string>();
    for (const line of msg.data.toString("utf8").split("\n")) {
      const eq = line.indexOf("=");
      if (eq > 0) fields.set(line.slice(0, eq), line.slice(eq + 1));
    }
    return { fields, fds: msg.fds };
  }

  /** Notices up to and including the first that has `key`. */
  async function noticesUntil(key: string): Promise<Notice[]> {
    const seen: Notice[] = [];
    for (;;) {
      const n = await nextNotice();
      seen.push(n);
      kept.push(...n.fds);
      if (n.fields.has(key)) return seen;
    }
  }

  /** Starts `fanrecall listener` as systemd would: NOTIFY_SOCKET, and the stored fds as 3... */
  function startListener(storedFds: number[]): Spawned {
    const env: NodeJS.ProcessEnv = { ...process.env, NOTIFY_SOCKET: notifyPath, FANRECALL_LOG_LEVEL: "info" };
    for (const k of Object.keys(env)) if (k.startsWith("FANRECALL_S3_")) delete env[k];
    if (storedFds.length > 0) {
      env.LISTEN_FDS = String(storedFds.length);
      env.LISTEN_FDNAMES = storedFds.map(() => "fanotify-group").join(":");
    }
    const args = ["listener", "--watch", fs.dir, "--run-dir", runDir, "--recall-uid", String(recallUser().uid)];
    args.push("--holder-socket", "", "--recall-timeout-ms", "30000");
    // LISTEN_PID must be the listener's own pid: the shell sets it and execs node in place.
    const argv = ["sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"', process.execPath, BIN, ...args];
    return spawnChild(argv, {
      env,
      extraFds: storedFds,
      timeoutMs: 300_000,
    });
  }

  async function released(prefix: string, n: number, size: number): Promise<Map<string, string>> {
    const files = writeRandomFiles(fs.dir, prefix, n, size);
    const r = await runChild([process.execPath, BIN, "release", "--run-dir", runDir, ...files.keys()], {
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 0, r.stderr);
    return files;
  }

  before(
    async () => {
      if (!isRoot()) return;
      fs = await makeExt4(256);
      store = await startS3rver();
      dir = mkdtempSync(join(tmpdir(), "fanrecall-systemd-"));
      chmodSync(dir, 0o755);
      runDir = join(dir, "run");
      mkdirSync(runDir, { mode: 0o755 });
      mkdirSync(recallSocketDir(runDir), { mode: 0o750 });
      const ru = recallUser(); // never 65534, the readers' uid
      chownSync(recallSocketDir(runDir), ru.uid, ru.gid);
      notifyPath = join(dir, "notify.sock");
      notifySock = datagramBind(notifyPath);
      recallService = spawnChild(
        [
          ...setprivAs(ru.uid, ru.gid),
          process.execPath,
          BIN,
          "recall-service",
          "--run-dir",
          runDir,
          "--chunk-size",
          String(MiB),
        ],
        {
          env: {
            ...process.env,
            FANRECALL_S3_ENDPOINT: store.endpoint,
            FANRECALL_S3_ACCESS_KEY: store.accessKey,
            FANRECALL_S3_SECRET_KEY: store.secretKey,
            FANRECALL_S3_REGION: store.region,
            FANRECALL_S3_BUCKET: "fanrecall-systemd",
          },
          timeoutMs: 600_000,
        },
      );
      const deadline = Date.now() + 20_000;
      while (!existsSync(recallGrpcSocketPath(runDir))) {
        if (Date.now() > deadline || recallService.child.exitCode !== null) {
          recallService.kill();
          assert.fail(`the recall service did not start: ${(await recallService.result).stderr}`);
        }
        await sleep(50);
      }
    },
    { timeout: 60_000 },
  );

  after(
    async () => {
      if (!isRoot()) return;
      store?.resume();
      recallService?.child.kill("SIGTERM");
      await recallService?.result;
      for (const fd of kept) native.close(fd);
      if (notifySock >= 0) native.close(notifySock);
      await store?.stop();
      await fs?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    },
    { timeout: 60_000 },
  );

  rootTest(
    "a listener SIGKILLed with readers held leaves them held in the fd store; the restarted one serves them",
    async () => {
      const first = startListener([]);
      const boot = await noticesUntil("READY");
      const stored = boot.filter((n) => n.fields.get("FDSTORE") === "1");
      assert.equal(stored.length, 1, "one FDSTORE=1 before READY=1");
      assert.equal(stored[0].fields.get("FDNAME"), "fanotify-group");
      assert.equal(stored[0].fds.length, 1, "FDSTORE=1 carries the group fd");
      const groupFd = stored[0].fds[0];
      assert.equal(boot.at(-1)!.fields.get("MAINPID"), String(first.pid));

      const files = await released("held", 6, 3 * MiB);
      store.pause();
      let second: Spawned | undefined;
      let results: ChildResult[];
      try {
        const readers = [...files.keys()].map((p) => spawnAsNobody(["cat", p], { timeoutMs: 90_000 }));
        await sleep(700);
        first.child.kill("SIGKILL");
        await first.result;
        await sleep(1_000);
        // Only the fd store's copy keeps the group (and its held events) alive now.
        for (const r of readers) assert.equal(r.child.exitCode, null, "a reader was let through by the crash");
        second = startListener([groupFd]);
        const again = await noticesUntil("READY");
        assert.equal(
          again.filter((n) => n.fields.has("FDSTORE")).length,
          0,
          "a group taken from the store is not stored twice",
        );
        store.resume();
        results = await Promise.all(readers.map((r) => r.result));
      } finally {
        store.resume();
      }
      checkReaders(results, files, true);
      const later = await Promise.all([...files.keys()].map((p) => runAsNobody(["cat", p], { timeoutMs: 30_000 })));
      assert.equal(checkReaders(later, files, false), 0, "after the takeover every read succeeds");

      second.child.kill("SIGTERM");
      const stop = await noticesUntil("FDSTOREREMOVE");
      assert.ok(
        stop.some((n) => n.fields.get("STOPPING") === "1"),
        "STOPPING=1 before the store is emptied",
      );
      assert.equal(stop.at(-1)!.fields.get("FDNAME"), "fanotify-group");
      const exit = await second.result;
      assert.equal(exit.code, 0, exit.stderr);
      assert.match(exit.stdout.toString(), /"from":"systemd fd store"/);
    },
    { timeout: 180_000 },
  );
});
