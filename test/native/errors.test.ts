// Error shape, constants and encodings of the native facade (no root needed).
import assert from "node:assert/strict";
import { constants as osConstants } from "node:os";
import { test } from "node:test";
import { AT_FDCWD, FAN, close, denyErrno, dup, fstat, isNativeError } from "../../native/index.js";

const { errno: E } = osConstants;

test("failed syscalls throw Node-shaped NativeErrors", () => {
  assert.throws(
    () => fstat(-1),
    (err: unknown) => {
      assert.ok(isNativeError(err, "EBADF"));
      assert.equal(err.errno, E.EBADF);
      assert.equal(err.syscall, "fstat");
      assert.equal(err.message, "EBADF: bad file descriptor, fstat");
      return true;
    },
  );
  assert.throws(
    () => close(-1),
    (err: unknown) => isNativeError(err, "EBADF") && err.syscall === "close",
  );
  assert.throws(
    () => dup(-1),
    (err: unknown) => isNativeError(err, "EBADF") && err.syscall === "dup",
  );
});

test("isNativeError rejects other errors and mismatched codes", () => {
  assert.equal(isNativeError(new Error("x")), false);
  assert.equal(isNativeError("EIO"), false);
  assert.equal(isNativeError(Object.assign(new Error("x"), { code: "EIO", errno: 5, syscall: "read" })), true);
  assert.equal(
    isNativeError(Object.assign(new Error("x"), { code: "EIO", errno: 5, syscall: "read" }), "EPERM"),
    false,
  );
});

test("bad arguments are TypeErrors or RangeErrors, not NativeErrors", () => {
  assert.throws(() => fstat("0" as unknown as number), TypeError);
  assert.throws(() => fstat(1.5), RangeError);
});

test("FAN constants come from the headers and match the kernel ABI", () => {
  for (const [key, value] of Object.entries(FAN)) assert.equal(typeof value, "number", key);
  assert.equal(FAN.FAN_PRE_ACCESS, 0x00100000);
  assert.equal(FAN.FAN_CLASS_PRE_CONTENT, 0x8);
  assert.equal(FAN.FAN_REPORT_FD_ERROR, 0x2000);
  assert.equal(FAN.FAN_MARK_EVICTABLE, 0x200);
  assert.equal(FAN.FAN_MARK_IGNORE, 0x400);
  assert.equal(FAN.FAN_MARK_IGNORED_SURV_MODIFY, 0x40);
  assert.equal(FAN.FAN_MARK_FILESYSTEM, 0x100);
  assert.equal(FAN.FAN_MARK_INODE, 0);
  assert.equal(FAN.FAN_ALLOW, 1);
  assert.equal(FAN.FAN_DENY, 2);
  assert.equal(FAN.O_RDWR, 2);
  assert.equal(FAN.FALLOC_FL_PUNCH_HOLE, 2);
  assert.equal(AT_FDCWD, -100);
  assert.ok(Object.isFrozen(FAN));
});

test("denyErrno encodes FAN_DENY_ERRNO", () => {
  assert.equal(denyErrno(E.EIO), 0x05000002);
  assert.equal(denyErrno(0), FAN.FAN_DENY);
  assert.equal(denyErrno(200), 0xc8000002);
  assert.throws(() => denyErrno(256), RangeError);
  assert.throws(() => denyErrno(-1), RangeError);
  assert.equal(denyErrno(E.EAGAIN), 0x0b000002);
});
