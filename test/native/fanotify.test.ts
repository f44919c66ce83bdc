// fanotify pre-content events on a scratch ext4 (root). Every event read is answered in a
// finally block and the group is closed afterwards, so no reader can stay blocked; children
// are killed by their spawn timeout at the latest.
import assert from "node:assert/strict";
import { mkdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { constants as osConstants } from "node:os";
import { basename, join } from "node:path";
import type { TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  AT_FDCWD,
  FAN,
  FdPoller,
  close,
  denyErrno,
  fanotifyInit,
  fanotifyMark,
  fanotifyReadEvents,
  fanotifyRespond,
  fgetxattr,
  fstat,
  getxattr,
  isNativeError,
  openBeneath,
  openPath,
  type FanEvent,
} from "../../native/index.js";
import { NATIVE_FACADE_URL, nodeEvalArgv, spawnAsNobody, spawnChild, type Spawned } from "../helpers/child.js";
import { makeExt4 } from "../helpers/loop-fs.js";
import { rootTest } from "../helpers/root.js";

const { errno: E } = osConstants;
const PAGE = 4096;

/** A pre-content group that remembers unanswered event fds and allows them on close. */
class Group {
  readonly fd = fanotifyInit(
    FAN.FAN_CLASS_PRE_CONTENT | FAN.FAN_CLOEXEC | FAN.FAN_NONBLOCK | FAN.FAN_UNLIMITED_QUEUE | FAN.FAN_REPORT_FD_ERROR,
    FAN.O_RDWR | FAN.O_LARGEFILE,
  );
  readonly pending = new Set<number>();

  mark(flags: number, path: string): void {
    fanotifyMark(this.fd, FAN.FAN_MARK_ADD | flags, FAN.FAN_PRE_ACCESS, AT_FDCWD, path);
  }

  /** Resolves with the first non-empty batch, or [] after timeoutMs. */
  waitEvents(timeoutMs: number): Promise<FanEvent[]> {
    return new Promise<FanEvent[]>((resolve, reject) => {
      const finish = (events: FanEvent[] | Error): void => {
        clearTimeout(timer);
        poller.close();
        if (events instanceof Error) reject(events);
        else resolve(events);
      };
      const poller = new FdPoller(this.fd, (err) => {
        if (err) return finish(err);
        try {
          const events = fanotifyReadEvents(this.fd);
          for (const ev of events) if (ev.fd >= 0) this.pending.add(ev.fd);
          if (events.length > 0) finish(events);
        } catch (e: unknown) {
          finish(e instanceof Error ? e : new Error(String(e)));
        }
      });
      const timer = setTimeout(() => finish([]), timeoutMs);
      poller.start();
    });
  }

  /** Waits for exactly one event from `pid`. */
  async eventFrom(pid: number): Promise<FanEvent> {
    const events = await this.waitEvents(5_000);
    assert.equal(events.length, 1, `expected one event, got ${JSON.stringify(events)}`);
    const [ev] = events;
    assert.ok(ev);
    assert.equal(ev.pid, pid);
    return ev;
  }

  answer(eventFd: number, response: number): void {
    fanotifyRespond(this.fd, eventFd, response);
    this.pending.delete(eventFd);
    close(eventFd);
  }

  close(): void {
    for (const fd of this.pending) {
      try {
        fanotifyRespond(this.fd, fd, FAN.FAN_ALLOW);
      } catch {
        // Closing the group below allows it anyway.
      }
      close(fd);
    }
    this.pending.clear();
    close(this.fd);
  }
}

async function withGroup(fn: (g: Group) => Promise<void>, children: Spawned[] = []): Promise<void> {
  const group = new Group();
  try {
    await fn(group);
  } finally {
    group.close();
    for (const c of children) c.kill();
  }
}

function makeFile(path: string, size: number): Buffer {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 7 + (i >> 12)) & 0xff;
  writeFileSync(path, data, { mode: 0o644 });
  return data;
}

function setxattrSync(path: string): void {
  execFileSync("setfattr", ["-n", "trusted.fanrecall-test", "-v", "v", path]);
}

function ddPage(path: string, page: number): Spawned {
  return spawnAsNobody(["dd", `if=${path}`, `bs=${PAGE}`, `skip=${page}`, "count=1", "status=none"]);
}

const PY_PREAD_ERRNO = [
  "import os, sys",
  "fd = os.open(sys.argv[1], os.O_RDONLY)",
  "try:",
  "    os.pread(fd, 10, 0)",
  '    print("ok")',
  "except OSError as e:",
  "    print(e.errno)",
].join("\n");

async function preAccessAllow(
  t: TestContext,
  dir: string,
  markFlags: number,
  markPath: (file: string) => string,
): Promise<void> {
  const file = join(dir, `${t.name.replace(/\W+/g, "-")}.bin`);
  const data = makeFile(file, 16 * PAGE);
  await withGroup(async (group) => {
    group.mark(markFlags, markPath(file));
    const reader = ddPage(file, 3);
    try {
      const ev = await group.eventFrom(reader.pid);
      assert.equal(ev.mask & FAN.FAN_PRE_ACCESS, FAN.FAN_PRE_ACCESS);
      assert.deepEqual(ev.range, { offset: 3 * PAGE, count: PAGE });
      assert.ok(ev.fd >= 0);
      assert.equal(fstat(ev.fd).ino, statSync(file).ino);
      group.answer(ev.fd, FAN.FAN_ALLOW);
      const result = await reader.result;
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(result.stdout, data.subarray(3 * PAGE, 4 * PAGE));
    } finally {
      reader.kill();
    }
  });
}

rootTest(
  "fanotify pre-content on a loop ext4",
  async (t) => {
    const fs = await makeExt4();
    try {
      await t.test("inode mark: FAN_PRE_ACCESS with page range and reader pid, then allow", (t2) =>
        preAccessAllow(t2, fs.dir, FAN.FAN_MARK_INODE, (file) => file),
      );

      await t.test("filesystem mark: the same event for any file on the fs", (t2) =>
        preAccessAllow(t2, fs.dir, FAN.FAN_MARK_FILESYSTEM, () => fs.dir),
      );

      await t.test("denyErrno(EIO) fails the reader with EIO, plain FAN_DENY with EPERM", async () => {
        const file = join(fs.dir, "deny.bin");
        makeFile(file, PAGE);
        await withGroup(async (group) => {
          group.mark(FAN.FAN_MARK_INODE, file);
          for (const [response, expected] of [
            [denyErrno(E.EIO), E.EIO],
            [FAN.FAN_DENY, E.EPERM],
          ] as const) {
            const reader = spawnAsNobody(["/usr/bin/python3", "-c", PY_PREAD_ERRNO, file]);
            try {
              const ev = await group.eventFrom(reader.pid);
              group.answer(ev.fd, response);
              const result = await reader.result;
              assert.equal(result.stdout.toString().trim(), String(expected), result.stderr);
            } finally {
              reader.kill();
            }
          }
        });
      });

      await t.test("an evictable ignore mark on the event fd silences that file only", async () => {
        const a = join(fs.dir, "ignored.bin");
        const b = join(fs.dir, "watched.bin");
        makeFile(a, 4 * PAGE);
        makeFile(b, 4 * PAGE);
        await withGroup(async (group) => {
          group.mark(FAN.FAN_MARK_FILESYSTEM, fs.dir);
          const first = ddPage(a, 0);
          try {
            const ev = await group.eventFrom(first.pid);
            const ignore =
              FAN.FAN_MARK_ADD | FAN.FAN_MARK_IGNORE | FAN.FAN_MARK_IGNORED_SURV_MODIFY | FAN.FAN_MARK_EVICTABLE;
            fanotifyMark(group.fd, ignore, FAN.FAN_PRE_ACCESS, ev.fd, null);
            group.answer(ev.fd, FAN.FAN_ALLOW);
            assert.equal((await first.result).code, 0);
          } finally {
            first.kill();
          }
          const again = ddPage(a, 1);
          try {
            assert.deepEqual(await group.waitEvents(300), [], "no event for the ignored inode");
            assert.equal((await again.result).code, 0);
          } finally {
            again.kill();
          }
          const other = ddPage(b, 1);
          try {
            const ev = await group.eventFrom(other.pid);
            assert.deepEqual(ev.range, { offset: PAGE, count: PAGE });
            group.answer(ev.fd, FAN.FAN_ALLOW);
            assert.equal((await other.result).code, 0);
          } finally {
            other.kill();
          }
        });
      });

      await t.test(
        "FdPoller wakes only for events; an invalid response throws EINVAL and keeps the event",
        async () => {
          const file = join(fs.dir, "poll.bin");
          makeFile(file, PAGE);
          await withGroup(async (group) => {
            group.mark(FAN.FAN_MARK_INODE, file);
            const events: FanEvent[] = [];
            let wakeups = 0;
            const poller = new FdPoller(group.fd, () => {
              wakeups++;
              for (const ev of fanotifyReadEvents(group.fd)) {
                group.pending.add(ev.fd);
                events.push(ev);
              }
            });
            let reader: Spawned | undefined;
            try {
              poller.start();
              await sleep(100);
              assert.equal(wakeups, 0, "no wakeups while the queue is empty");
              reader = spawnAsNobody(["/usr/bin/python3", "-c", PY_PREAD_ERRNO, file]);
              // python3 takes a while to start; poll the array, not the fd.
              for (let i = 0; i < 500 && events.length === 0; i++) await sleep(10);
              const [ev] = events;
              assert.ok(ev, "event arrived");
              assert.equal(ev.pid, reader.pid);
              const settled = wakeups;
              await sleep(100);
              assert.equal(wakeups, settled, "a drained fd does not wake the poller again");
              assert.throws(
                () => fanotifyRespond(group.fd, ev.fd, denyErrno(E.ENOENT)),
                (err: unknown) => isNativeError(err, "EINVAL") && err.errno === E.EINVAL && err.syscall === "write",
              );
              assert.throws(
                () => fanotifyRespond(group.fd, ev.fd, 0x3),
                (err: unknown) => isNativeError(err, "EINVAL"),
              );
              assert.throws(
                () => fanotifyRespond(group.fd, 99_999, FAN.FAN_ALLOW),
                (err: unknown) => isNativeError(err, "ENOENT"),
              );
              group.answer(ev.fd, FAN.FAN_ALLOW);
              const result = await reader.result;
              assert.equal(result.stdout.toString().trim(), "ok", result.stderr);
            } finally {
              poller.close();
              reader?.kill();
            }
          });
        },
      );

      await t.test("openBeneath: O_PATH beneath its directory only, and its open raises no event", async () => {
        const file = join(fs.dir, "beneath", "f.bin");
        mkdirSync(join(fs.dir, "beneath"), { recursive: true });
        makeFile(file, PAGE);
        setxattrSync(file);
        symlinkSync("/etc/passwd", join(fs.dir, "beneath", "link"));
        const root = openPath(fs.dir, FAN.O_PATH | FAN.O_DIRECTORY);
        try {
          const fd = openBeneath(root, "beneath/f.bin");
          try {
            assert.equal(fstat(fd).ino, statSync(file).ino);
            assert.throws(
              () => fgetxattr(fd, "trusted.fanrecall-test"),
              (e: unknown) => isNativeError(e, "EBADF"),
            );
            assert.equal(getxattr(`/proc/self/fd/${fd}`, "trusted.fanrecall-test")?.toString(), "v");
          } finally {
            close(fd);
          }
          for (const [rel, code] of [
            ["../" + basename(fs.dir) + "/beneath/f.bin", "EXDEV"],
            ["/etc/passwd", "EXDEV"],
            ["beneath/link/x", "ELOOP"],
            ["beneath/missing", "ENOENT"],
          ] as const) {
            assert.throws(
              () => openBeneath(root, rel),
              (e: unknown) => isNativeError(e, code),
              rel,
            );
          }
        } finally {
          close(root);
        }
        // The open runs in a child: were an event raised, only another process could answer it.
        await withGroup(async (group) => {
          fanotifyMark(group.fd, FAN.FAN_MARK_ADD | FAN.FAN_MARK_INODE, FAN.FAN_OPEN_PERM, AT_FDCWD, file);
          group.mark(FAN.FAN_MARK_INODE, file);
          const script = [
            `import * as n from ${JSON.stringify(NATIVE_FACADE_URL)};`,
            `const root = n.openPath(${JSON.stringify(fs.dir)}, n.FAN.O_PATH | n.FAN.O_DIRECTORY);`,
            `const fd = n.openBeneath(root, "beneath/f.bin");`,
            `n.getxattr("/proc/self/fd/" + fd, "trusted.fanrecall-test");`,
            `console.log(n.fstat(fd).size);`,
          ].join("\n");
          const child = spawnChild(nodeEvalArgv(script), { timeoutMs: 15_000 });
          try {
            const result = await child.result;
            assert.equal(result.code, 0, result.stderr);
            assert.equal(result.stdout.toString().trim(), String(PAGE));
            assert.deepEqual(await group.waitEvents(200), [], "no open or pre-content event for an O_PATH open");
            const reader = ddPage(file, 0);
            try {
              const ev = await group.eventFrom(reader.pid);
              assert.equal(ev.mask & FAN.FAN_OPEN_PERM, FAN.FAN_OPEN_PERM, "a real open does raise one");
              group.answer(ev.fd, FAN.FAN_ALLOW);
            } finally {
              reader.kill();
            }
          } finally {
            child.kill();
          }
        });
      });

      await t.test("fanotifyMark errors carry code and syscall", async () => {
        await withGroup(async (group) => {
          assert.throws(
            () => group.mark(FAN.FAN_MARK_INODE, join(fs.dir, "missing")),
            (err: unknown) => isNativeError(err, "ENOENT") && err.syscall === "fanotify_mark",
          );
          assert.throws(
            () =>
              fanotifyMark(
                group.fd,
                FAN.FAN_MARK_ADD,
                FAN.FAN_PRE_ACCESS | 0x40000000 /* FAN_ONDIR */,
                AT_FDCWD,
                fs.dir,
              ),
            (err: unknown) => isNativeError(err, "EINVAL"),
          );
          assert.deepEqual(fanotifyReadEvents(group.fd), [], "empty queue reads as []");
        });
      });
    } finally {
      await fs.cleanup();
    }
  },
  { timeout: 40_000 },
);
