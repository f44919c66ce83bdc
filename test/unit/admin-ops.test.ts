// AdminOps (archive, release) with fake collaborators (test/helpers/fake-listener.ts) on real
// temp files, without root: nothing the recall service reports becomes stub state unchecked.
// An archive reply for another request, naming another size or carrying a malformed digest
// is refused and no stub state is written, as is an archive whose fd cannot be sent; a
// release whose verify reply says "equal" is still refused, with nothing freed, when the
// manifest read back is not the file as hashed here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as native from "../../native/index.js";
import { AdminError, OwnedFd } from "../../listener/admin-ops.js";
import { encodeStubState } from "../../listener/stub-state.js";
import type { StubState } from "../../listener/stub-state.js";
import { Reason } from "../../proto/index.js";
import { ManifestBuilder, encodeManifest, sha256Hex } from "../../recall-service/manifest.js";
import { archiveReply, fakeListener, verifyReply } from "../helpers/fake-listener.js";

const CHUNK = 1024 * 1024;

function rig(t: { after: (fn: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), "admin-ops-"));
  const open: number[] = [];
  t.after(() => {
    for (const fd of open) {
      try {
        closeSync(fd);
      } catch {
        // closed by the operation (release closes the caller's fd)
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const { source, channel, recall, views, xattr, ops } = fakeListener();
  /** A resident file with `data`, opened read-only (as the listener's view would). */
  const file = (name: string, data: Buffer): { path: string; fd: number } => {
    const path = join(dir, name);
    writeFileSync(path, data);
    const fd = openSync(path, "r");
    open.push(fd);
    return { path, fd };
  };
  return { source, channel, recall, views, xattr, ops, file };
}

function manifestOf(data: Buffer): Buffer {
  const b = new ManifestBuilder(CHUNK);
  b.update(data);
  return encodeManifest(b.finish());
}

function goodArchive(data: Buffer) {
  return {
    reason: Reason.ARCHIVED,
    object: { bucket: "bucket", key: "objects/f", versionId: "v1", manifestVersionId: "" },
    integrity: {
      contentSha256: sha256Hex(data),
      manifestSha256: sha256Hex(manifestOf(data)),
      chunkSize: BigInt(CHUNK),
    },
    size: BigInt(data.length),
  };
}

async function refused(p: Promise<unknown>, reason: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof AdminError, String(err));
    assert.equal(err.reason, reason);
    assert.match(err.message, message);
    return true;
  });
}

test("archive: a well-formed reply for this request and this file becomes the stub state", async (t) => {
  const r = rig(t);
  const data = randomBytes(10_000);
  const { fd } = r.file("ok", data);
  r.recall.onArchive = (req) => archiveReply({ requestId: req.requestId, ...goodArchive(data) });
  const res = await r.ops.archive(fd);
  assert.equal(res.state, "archived");
  assert.equal(r.channel.sent[0].requestId, r.recall.archives[0].requestId, "fd and RPC carry one id");
  assert.deepEqual(
    r.xattr.writes.map((w) => [w.state.state, w.state.size, w.state.contentSha256]),
    [["archived", data.length, sha256Hex(data)]],
  );
});

test("archive: a reply naming another size is refused; no stub state is written", async (t) => {
  const r = rig(t);
  const data = randomBytes(10_000);
  const { fd } = r.file("size", data);
  r.recall.onArchive = (req) =>
    archiveReply({ requestId: req.requestId, ...goodArchive(data), size: BigInt(data.length + 1) });
  await refused(r.ops.archive(fd), "protocol-error", /another size/);
  assert.equal(r.xattr.writes.length, 0);
});

test("archive: a reply with a malformed digest or chunk size is refused; no stub state is written", async (t) => {
  const r = rig(t);
  const data = randomBytes(10_000);
  const { fd } = r.file("digest", data);
  const good = goodArchive(data);
  r.recall.onArchive = (req) =>
    archiveReply({
      requestId: req.requestId,
      ...good,
      integrity: { ...good.integrity, contentSha256: "not-a-sha256" },
    });
  await refused(r.ops.archive(fd), "protocol-error", /archive reply refused/);
  r.recall.onArchive = (req) =>
    archiveReply({ requestId: req.requestId, ...good, integrity: { ...good.integrity, chunkSize: 1000n } });
  await refused(r.ops.archive(fd), "protocol-error", /archive reply refused/);
  assert.equal(r.xattr.writes.length, 0);
});

test("archive: a reply for another request is refused; no stub state is written", async (t) => {
  const r = rig(t);
  const data = randomBytes(1000);
  const { fd } = r.file("other-id", data);
  r.recall.onArchive = (req) => archiveReply({ requestId: (req.requestId ?? 0n) + 1n, ...goodArchive(data) });
  await refused(r.ops.archive(fd), "protocol-error", /another request/);
  assert.equal(r.xattr.writes.length, 0);
});

test("archive: an fd the fd channel cannot take is recall-unavailable, as for a recall; no RPC, no stub state", async (t) => {
  const r = rig(t);
  const { fd } = r.file("no-channel", randomBytes(1000));
  r.channel.failing = true;
  await refused(r.ops.archive(fd), "recall-unavailable", /not connected/);
  assert.equal(r.recall.archives.length, 0, "no RPC without the fd");
  assert.equal(r.xattr.writes.length, 0);
});

/** An archived file whose stub state names `claimed` content (and its manifest). */
function archivedFile(r: ReturnType<typeof rig>, name: string, data: Buffer, claimed: Buffer) {
  const f = r.file(name, data);
  const st = native.fstat(f.fd);
  const stub: StubState = {
    version: 1,
    state: "archived",
    bucket: "bucket",
    key: `objects/${name}`,
    versionId: "v1",
    manifestVersionId: "",
    size: st.size,
    mtimeNs: st.mtimeNs,
    atimeNs: st.atimeNs,
    chunkSize: CHUNK,
    contentSha256: sha256Hex(claimed),
    manifestSha256: sha256Hex(manifestOf(claimed)),
  };
  r.xattr.preset(f.fd, encodeStubState(stub));
  return f;
}

test("release: the service says equal, but the manifest read back is not the file hashed here: refused, nothing freed", async (t) => {
  const r = rig(t);
  const data = randomBytes(20_000);
  const claimed = randomBytes(data.length);
  const { path, fd } = archivedFile(r, "not-this-file", data, claimed);
  r.recall.onVerify = (req) => verifyReply({ requestId: req.requestId, equal: true, manifest: manifestOf(claimed) });
  await refused(r.ops.release(new OwnedFd(fd)), "mismatch", /does not match the file/);
  assert.equal(r.xattr.writes.length, 0, "the stub state stays archived");
  assert.equal(r.views.reopens, 0, "no writable fd was taken");
  assert.deepEqual(r.source.unignored, []);
  assert.ok(readFileSync(path).equals(data), "the file's bytes are all there");
});

test("release: manifest bytes that are not the stub state's manifest: refused, nothing freed", async (t) => {
  const r = rig(t);
  const data = randomBytes(20_000);
  const { path, fd } = archivedFile(r, "other-manifest", data, data);
  r.recall.onVerify = (req) =>
    verifyReply({ requestId: req.requestId, equal: true, manifest: manifestOf(randomBytes(data.length)) });
  await refused(r.ops.release(new OwnedFd(fd)), "mismatch", /does not match the file/);
  assert.equal(r.xattr.writes.length, 0);
  assert.ok(readFileSync(path).equals(data));
});

test("release: a verify reply for another request is refused, nothing freed", async (t) => {
  const r = rig(t);
  const data = randomBytes(5000);
  const { path, fd } = archivedFile(r, "verify-id", data, data);
  r.recall.onVerify = (req) =>
    verifyReply({ requestId: (req.requestId ?? 0n) + 1n, equal: true, manifest: manifestOf(data) });
  await refused(r.ops.release(new OwnedFd(fd)), "protocol-error", /another request/);
  assert.equal(r.xattr.writes.length, 0);
  assert.ok(readFileSync(path).equals(data));
});

test("release: an archive vouched for here is released (state first, blocks punched, ignore mark dropped)", async (t) => {
  const r = rig(t);
  const data = randomBytes(20_000);
  const { path, fd } = archivedFile(r, "released", data, data);
  r.recall.onVerify = (req) => verifyReply({ requestId: req.requestId, equal: true, manifest: manifestOf(data) });
  const res = await r.ops.release(new OwnedFd(fd));
  assert.equal(res.state, "released");
  assert.deepEqual(
    r.xattr.writes.map((w) => w.state.state),
    ["released"],
  );
  assert.equal(r.source.unignored.length, 1);
  const check = openSync(path, "r");
  try {
    assert.equal(native.seekData(check, 0), -1, "no data left");
    assert.equal(native.fstat(check).size, data.length, "the size stays");
  } finally {
    closeSync(check);
  }
});
