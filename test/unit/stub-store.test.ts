// The stub store: reads give the state, null (resident) or "corrupt" (logged once, with why);
// writes refuse what decoding would, writing nothing; an O_PATH fd is read through its
// /proc/self/fd link (root: trusted.* xattrs). fileStatus: the one status shape that
// `fanrecall status` and the mesh STATUS operation report, for every state.
import { test } from "node:test";
import assert from "node:assert/strict";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import * as native from "../../native/index.js";
import { STUB_XATTR, StubStateError, encodeStubState } from "../../listener/stub-state.js";
import type { StoredState, StubState } from "../../listener/stub-state.js";
import { StubStore, fileStatus } from "../../listener/stub-store.js";
import { FakeStubXattr } from "../helpers/fake-listener.js";
import { rootTest } from "../helpers/root.js";

const stub: StubState = {
  version: 1,
  state: "released",
  bucket: "bucket",
  key: "objects/f",
  versionId: "v1",
  manifestVersionId: "",
  size: 5000,
  mtimeNs: 1_600_000_000_123_456_789n,
  atimeNs: 1_600_000_000_000_000_000n,
  chunkSize: 1024 * 1024,
  contentSha256: "a".repeat(64),
  manifestSha256: "b".repeat(64),
};
const object = { bucket: "bucket", key: "objects/f", versionId: "v1" };

/** A logger that records its error lines (the store logs nothing else). */
function errorLog(): { log: Logger; errors: Array<{ fields: unknown; msg: string }> } {
  const errors: Array<{ fields: unknown; msg: string }> = [];
  const log = { error: (fields: unknown, msg: string) => errors.push({ fields, msg }) } as unknown as Logger;
  return { log, errors };
}

function tempFile(t: { after: (fn: () => void) => void }, data = "x"): { path: string; fd: number } {
  const dir = mkdtempSync(join(tmpdir(), "stub-store-"));
  const path = join(dir, "f");
  writeFileSync(path, data);
  const fd = openSync(path, "r");
  t.after(() => {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  });
  return { path, fd };
}

test("read: no xattr is null (resident); a stored state is decoded; nothing is logged", (t) => {
  const { fd } = tempFile(t);
  const xattr = new FakeStubXattr();
  const { log, errors } = errorLog();
  const store = new StubStore(log, xattr);
  assert.equal(store.read(fd), null);
  xattr.preset(fd, encodeStubState(stub));
  assert.deepEqual(store.read(fd), stub);
  assert.deepEqual(errors, []);
});

test('read: a value that does not decode is "corrupt", logged once at error with why', (t) => {
  const { fd } = tempFile(t);
  const xattr = new FakeStubXattr();
  const { log, errors } = errorLog();
  xattr.preset(fd, Buffer.from(JSON.stringify({ v: 1, st: "released" })));
  assert.equal(new StubStore(log, xattr).read(fd), "corrupt");
  assert.equal(errors.length, 1);
  assert.equal(errors[0].msg, "corrupt stub state");
  assert.match(String((errors[0].fields as { err: string }).err), /field|invalid|chunk/);
  xattr.preset(fd, Buffer.from("not json"));
  assert.equal(new StubStore(null, xattr).read(fd), "corrupt", "without a log: still corrupt, nothing thrown");
});

test("write: what is written reads back; a state decoding would refuse is refused and nothing is written", (t) => {
  const { fd } = tempFile(t);
  const xattr = new FakeStubXattr();
  const store = new StubStore(null, xattr);
  store.write(fd, { ...stub, state: "archived" });
  assert.deepEqual(store.read(fd), { ...stub, state: "archived" });
  assert.throws(() => store.write(fd, { ...stub, chunkSize: 1000 }), StubStateError);
  assert.throws(() => store.write(fd, { ...stub, key: "bad\nkey" }), StubStateError);
  assert.deepEqual(
    xattr.writes.map((w) => w.state.state),
    ["archived"],
    "only the valid state was written",
  );
});

rootTest("the real xattr: written on an fd, read on it and on an O_PATH fd of the same file", (t) => {
  const { path, fd } = tempFile(t);
  const store = new StubStore(null);
  const rw = openSync(path, "r+");
  try {
    store.write(rw, stub);
  } finally {
    closeSync(rw);
  }
  assert.deepEqual(store.read(fd), stub);
  const opath = native.openPath(path, native.FAN.O_PATH);
  try {
    assert.throws(() => store.read(opath), /EBADF/, "fgetxattr refuses an O_PATH fd");
    assert.deepEqual(store.readOPath(opath), stub);
    native.fsetxattr(fd, STUB_XATTR, Buffer.from("{"), 0);
    assert.equal(store.readOPath(opath), "corrupt");
  } finally {
    native.close(opath);
  }
});

test("fileStatus: a file without stub state is resident, every byte present, no object", () => {
  const st = { size: 1234, mtimeNs: 5n };
  assert.deepEqual(
    fileStatus(st, null, () => assert.fail("no count")),
    { state: "resident", size: 1234, populatedBytes: 1234, object: null },
  );
});

test('fileStatus: a corrupt stub state is "corrupt", nothing counted as present, no object', () => {
  assert.deepEqual(
    fileStatus({ size: 99, mtimeNs: 0n }, "corrupt", () => assert.fail("no count")),
    { state: "corrupt", size: 99, populatedBytes: 0, object: null },
  );
});

test("fileStatus: released holds nothing; partial holds what is counted (asked only then); archived and dirty hold all", () => {
  const st = { size: stub.size, mtimeNs: stub.mtimeNs };
  const status = (state: StoredState, count: () => number = () => assert.fail("counted")) =>
    fileStatus(st, { ...stub, state }, count);
  assert.deepEqual(status("released"), { state: "released", size: 5000, populatedBytes: 0, object });
  assert.deepEqual(
    status("partial", () => 4096),
    { state: "partial", size: 5000, populatedBytes: 4096, object },
  );
  assert.deepEqual(status("archived"), { state: "archived", size: 5000, populatedBytes: 5000, object });
  assert.deepEqual(status("dirty"), { state: "dirty", size: 5000, populatedBytes: 5000, object });
});

test("fileStatus: an archived file whose size or mtime changed since is dirty; a released one keeps its state", () => {
  const archived = { ...stub, state: "archived" as const };
  const none = () => assert.fail("counted");
  assert.equal(fileStatus({ size: 5001, mtimeNs: stub.mtimeNs }, archived, none).state, "dirty");
  assert.equal(fileStatus({ size: 5000, mtimeNs: stub.mtimeNs + 1n }, archived, none).state, "dirty");
  assert.equal(fileStatus({ size: 5000, mtimeNs: stub.mtimeNs + 1n }, stub, none).state, "released");
  assert.deepEqual(fileStatus({ size: 5001, mtimeNs: 0n }, archived, none), {
    state: "dirty",
    size: 5001,
    populatedBytes: 5001,
    object,
  });
});
