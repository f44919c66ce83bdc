// fd-level file operations on a scratch file under os.tmpdir() (ext4 here; no root needed
// except for trusted.* xattrs).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fdatasyncSync, mkdtempSync, readSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  FAN,
  close,
  createBeneath,
  dataBytes,
  dup,
  fgetxattr,
  fsetxattr,
  fstat,
  getxattr,
  futimens,
  isNativeError,
  mkdirAt,
  openPath,
  punchHole,
  seekData,
  seekHole,
} from "../../native/index.js";
import { rootTest } from "../helpers/root.js";

// Plain reads and writes go through node:fs (the addon has no pread/pwrite: production
// reads and writes on the thread pool).
const pwrite = (fd: number, b: Buffer, pos: number): number => writeSync(fd, b, 0, b.length, pos);
const pread = (fd: number, b: Buffer, pos: number): number => readSync(fd, b, 0, b.length, pos);

const MiB = 1024 * 1024;
let dir = "";
let seq = 0;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "fanrecall-fileops-"));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function withFile(fn: (fd: number, path: string) => void, flags = FAN.O_RDWR | FAN.O_CREAT | FAN.O_EXCL): void {
  const path = join(dir, `f${seq++}`);
  const fd = openPath(path, flags, 0o644);
  try {
    fn(fd, path);
  } finally {
    close(fd);
  }
}

test("openPath creates with mode, sets O_CLOEXEC and reports ENOENT/EEXIST", () => {
  withFile((fd, path) => {
    assert.equal(statSync(path).mode & 0o777, 0o644 & ~process.umask());
    assert.throws(
      () => openPath(path, FAN.O_RDWR | FAN.O_CREAT | FAN.O_EXCL),
      (e: unknown) => isNativeError(e, "EEXIST") && e.syscall === "openat",
    );
    assert.ok(fd >= 0);
  });
  assert.throws(
    () => openPath(join(dir, "missing"), FAN.O_RDONLY),
    (e: unknown) => isNativeError(e, "ENOENT"),
  );
});

test("fstat reports size, mode, ids and ns times; futimens restores times", () => {
  withFile((fd, path) => {
    pwrite(fd, Buffer.alloc(5000, 1), 0);
    const st = fstat(fd);
    const ref = statSync(path, { bigint: true });
    assert.equal(st.size, 5000);
    assert.equal(BigInt(st.ino), ref.ino);
    assert.equal(BigInt(st.dev), ref.dev);
    assert.equal(st.mode, Number(ref.mode));
    assert.equal(st.nlink, 1);
    assert.equal(st.uid, process.getuid?.());
    assert.equal(st.gid, process.getgid?.());
    assert.equal(st.mtimeNs, ref.mtimeNs);
    assert.equal(st.ctimeNs, ref.ctimeNs);
    assert.ok(st.blksize > 0);
    const atime = 1_600_000_000_123_456_789n;
    const mtime = 1_700_000_000_987_654_321n;
    futimens(fd, atime, mtime);
    const st2 = fstat(fd);
    assert.equal(st2.atimeNs, atime);
    assert.equal(st2.mtimeNs, mtime);
    assert.throws(() => futimens(fd, 1n << 70n, 0n), RangeError);
  });
});

test("punchHole keeps the size and frees blocks", () => {
  withFile((fd) => {
    pwrite(fd, Buffer.alloc(2 * MiB, 7), 0);
    fdatasyncSync(fd);
    const before = fstat(fd);
    assert.ok(before.blocks >= (2 * MiB) / 512, `blocks ${before.blocks}`);
    punchHole(fd, 0, MiB);
    const afterPunch = fstat(fd);
    assert.equal(afterPunch.size, 2 * MiB);
    assert.ok(afterPunch.blocks <= before.blocks - MiB / 512, `blocks ${before.blocks} -> ${afterPunch.blocks}`);
    const buf = Buffer.alloc(4096, 1);
    pread(fd, buf, 4096);
    assert.ok(buf.every((b) => b === 0));
    assert.throws(
      () => punchHole(fd, 0, 0),
      (e: unknown) => isNativeError(e, "EINVAL") && e.syscall === "fallocate",
    );
  });
});

test("seekData/seekHole find the data in a sparse file, -1 past the end", () => {
  withFile((fd) => {
    pwrite(fd, Buffer.alloc(4096, 9), 512 * 1024);
    pwrite(fd, Buffer.alloc(1), MiB - 1);
    punchHole(fd, MiB - 4096, 4096);
    fdatasyncSync(fd);
    assert.equal(fstat(fd).size, MiB);
    assert.equal(seekHole(fd, 0), 0);
    assert.equal(seekData(fd, 0), 512 * 1024);
    assert.equal(seekHole(fd, 512 * 1024), 512 * 1024 + 4096);
    assert.equal(seekData(fd, 512 * 1024 + 4096), -1);
    assert.equal(seekHole(fd, MiB + 10), -1);
  });
});

test("dup returns an independent close-on-exec fd for the same file", () => {
  withFile((fd) => {
    const copy = dup(fd);
    try {
      assert.notEqual(copy, fd);
      assert.equal(fstat(copy).ino, fstat(fd).ino);
    } finally {
      close(copy);
    }
  });
});

test("user.* xattrs: get/set, ENODATA as null, XATTR_CREATE/REPLACE", () => {
  withFile((fd) => {
    assert.equal(fgetxattr(fd, "user.fanrecall.test"), null);
    assert.throws(
      () => fsetxattr(fd, "user.fanrecall.test", Buffer.from("x"), FAN.XATTR_REPLACE),
      (e: unknown) => isNativeError(e, "ENODATA") && e.syscall === "fsetxattr",
    );
    fsetxattr(fd, "user.fanrecall.test", Buffer.from("stub:v1"), FAN.XATTR_CREATE);
    assert.deepEqual(fgetxattr(fd, "user.fanrecall.test"), Buffer.from("stub:v1"));
    assert.throws(
      () => fsetxattr(fd, "user.fanrecall.test", Buffer.from("x"), FAN.XATTR_CREATE),
      (e: unknown) => isNativeError(e, "EEXIST"),
    );
    fsetxattr(fd, "user.fanrecall.test", new Uint8Array(0), FAN.XATTR_REPLACE);
    assert.deepEqual(fgetxattr(fd, "user.fanrecall.test"), Buffer.alloc(0));
  });
});

test("xattr values around the 4 KiB first-try buffer read back whole (tmpfs keeps large values)", () => {
  // ext4 keeps xattrs in one block; tmpfs (Linux >= 6.6) stores user.* values of any size.
  const path = join("/dev/shm", `fanrecall-xattr-${process.pid}`);
  const fd = openPath(path, FAN.O_RDWR | FAN.O_CREAT | FAN.O_EXCL, 0o600);
  try {
    for (const size of [0, 4095, 4096, 4097, 20_000]) {
      const value = Buffer.alloc(size, size & 0xff);
      fsetxattr(fd, "user.fanrecall.big", value, 0);
      assert.deepEqual(fgetxattr(fd, "user.fanrecall.big"), value, `${size} bytes`);
      assert.deepEqual(getxattr(path, "user.fanrecall.big"), value, `${size} bytes by path`);
    }
  } finally {
    close(fd);
    rmSync(path, { force: true });
  }
});

rootTest("trusted.* xattrs need root and work on fds", () => {
  withFile((fd) => {
    fsetxattr(fd, "trusted.fanrecall", Buffer.from([1, 2, 3]), 0);
    assert.deepEqual(fgetxattr(fd, "trusted.fanrecall"), Buffer.from([1, 2, 3]));
  });
});

test("file ops on a file written outside the facade", () => {
  const path = join(dir, "plain");
  writeFileSync(path, "hello");
  const fd = openPath(path, FAN.O_RDONLY);
  try {
    const buf = Buffer.alloc(16);
    assert.equal(pread(fd, buf, 0), 5);
    assert.equal(buf.subarray(0, 5).toString(), "hello");
  } finally {
    close(fd);
  }
});

test("getxattr reads by path, following a symlink; null when absent", () => {
  const path = join(dir, "lget");
  writeFileSync(path, "x");
  const fd = openPath(path, FAN.O_RDWR);
  try {
    fsetxattr(fd, "user.fanrecall-test", Buffer.from("v1"), 0);
  } finally {
    close(fd);
  }
  assert.equal(getxattr(path, "user.fanrecall-test")?.toString(), "v1");
  assert.equal(getxattr(path, "user.absent"), null);
  const link = join(dir, "lget-link");
  symlinkSync(path, link);
  assert.equal(getxattr(link, "user.fanrecall-test")?.toString(), "v1", "through the symlink");
  assert.throws(
    () => getxattr(join(dir, "missing"), "user.x"),
    (err: unknown) => isNativeError(err, "ENOENT"),
  );
});

test("setNoNewPrivs sets no_new_privs for the process (checked in a child)", () => {
  const script = `import { setNoNewPrivs } from ${JSON.stringify(new URL("../../native/index.ts", import.meta.url).href)};
import { readFileSync } from "node:fs";
setNoNewPrivs();
process.stdout.write(/NoNewPrivs:\\s+1/.test(readFileSync("/proc/self/status", "utf8")) ? "yes" : "no");`;
  const r = spawnSync(process.execPath, ["--import", import.meta.resolve("tsx"), "--input-type=module", "-e", script], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(r.stdout, "yes", r.stderr);
});

test("dataBytes counts the bytes that hold data below a size", () => {
  const path = join(dir, "databytes");
  const fd = openPath(path, FAN.O_RDWR | FAN.O_CREAT);
  try {
    assert.equal(dataBytes(fd, 0), 0);
    pwrite(fd, Buffer.alloc(4096, 1), MiB);
    pwrite(fd, Buffer.alloc(8192, 2), 3 * MiB);
    assert.equal(dataBytes(fd, 4 * MiB), 4096 + 8192);
    assert.equal(dataBytes(fd, 2 * MiB), 4096);
  } finally {
    close(fd);
  }
});

test("createBeneath makes a new file with its mode and never opens an existing name, a symlink or a way out", () => {
  const d = mkdtempSync(join(dir, "create-"));
  const dirFd = openPath(d, FAN.O_PATH | FAN.O_DIRECTORY);
  try {
    mkdirAt(dirFd, "sub", 0o700);
    assert.equal(statSync(join(d, "sub")).mode & 0o7777, 0o700);
    const fd = createBeneath(dirFd, "sub/new", 0o600);
    assert.equal(fstat(fd).mode & 0o7777, 0o600);
    close(fd);
    writeFileSync(join(d, "target"), "keep");
    symlinkSync(join(d, "target"), join(d, "link"));
    symlinkSync(d, join(d, "linkdir"));
    const refused: Array<[string, string]> = [
      ["sub/new", "EEXIST"],
      ["link", "EEXIST"],
      ["linkdir/x", "ELOOP"],
      ["../escape", "EXDEV"],
      ["/tmp/abs", "EXDEV"],
    ];
    for (const [path, code] of refused) {
      assert.throws(
        () => createBeneath(dirFd, path, 0o644),
        (e: unknown) => isNativeError(e, code),
        path,
      );
    }
    for (const name of ["a/b", "..", ".", ""]) {
      assert.throws(
        () => mkdirAt(dirFd, name, 0o755),
        (e: unknown) => isNativeError(e, "EINVAL"),
        name,
      );
    }
    assert.throws(
      () => mkdirAt(dirFd, "sub", 0o755),
      (e: unknown) => isNativeError(e, "EEXIST"),
    );
  } finally {
    close(dirFd);
  }
});
