// The listener's own check of recalled bytes, on real files: only bytes equal to the trusted
// hashes pass; manifests whose bytes are not the stub state's, or that describe other content,
// are refused; holes fail; what was found equal is remembered until forgotten.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync, ftruncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ContentCheck } from "../../listener/content-check.js";
import type { StubState } from "../../listener/stub-state.js";
import { ManifestBuilder, encodeManifest, sha256Hex } from "../../recall-service/manifest.js";

const CHUNK = 1024 * 1024;

function stubFor(data: Buffer, manifest: Buffer, chunkSize = CHUNK): StubState {
  return {
    version: 1,
    state: "partial",
    bucket: "b",
    key: "k",
    versionId: "",
    manifestVersionId: "",
    size: data.length,
    mtimeNs: 0n,
    atimeNs: 0n,
    chunkSize,
    contentSha256: sha256Hex(data),
    manifestSha256: sha256Hex(manifest),
  };
}

function manifestOf(data: Buffer, chunkSize = CHUNK): Buffer {
  const b = new ManifestBuilder(chunkSize);
  b.update(data);
  return encodeManifest(b.finish());
}

function withFile(data: Buffer | null, size: number, fn: (fd: number) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "content-check-"));
  const fd = openSync(join(dir, "f"), "w+");
  ftruncateSync(fd, size);
  if (data) writeSync(fd, data, 0, data.length, 0);
  return fn(fd).finally(() => {
    closeSync(fd);
    rmSync(dir, { recursive: true });
  });
}

test("a multi-chunk file needs its manifest; bytes that are not the stub state's are refused", () => {
  const data = randomBytes(3 * CHUNK + 100);
  const manifest = manifestOf(data);
  const stub = stubFor(data, manifest);
  const c = new ContentCheck();
  assert.equal(c.needsManifest(stub), true);
  assert.equal(c.accept(stub, Buffer.concat([manifest, Buffer.from(" ")])), false, "other bytes");
  const other = randomBytes(data.length);
  const otherManifest = manifestOf(other);
  // The manifest of other content, even with the stub's manifest hash pointing at it, is refused
  // because it names another whole-content sha256.
  assert.equal(c.accept({ ...stub, manifestSha256: sha256Hex(otherManifest) }, otherManifest), false);
  assert.equal(c.needsManifest(stub), true);
  assert.equal(c.accept(stub, manifest), true);
  assert.equal(c.needsManifest(stub), false);
  assert.equal(c.needsManifest(stubFor(randomBytes(1000), Buffer.from("x"))), false, "one small chunk: content hash");
});

test("only the file's bytes pass; a changed block is named; a hole fails", async () => {
  const data = randomBytes(3 * CHUNK + 100);
  const manifest = manifestOf(data);
  const stub = stubFor(data, manifest);
  const c = new ContentCheck();
  assert.equal(c.accept(stub, manifest), true);
  await withFile(data, data.length, async (fd) => {
    assert.deepEqual(await c.check(fd, "1:1", stub, 0, data.length), { ok: true });
  });
  const wrong = Buffer.from(data);
  wrong[CHUNK + 5] ^= 0xff;
  await withFile(wrong, data.length, async (fd) => {
    const r = await c.check(fd, "1:2", stub, 0, data.length);
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.why === "mismatch");
    const blockSize = 256 * 1024;
    assert.ok(!r.ok && r.bad.length === 1 && r.bad[0][0] === CHUNK && r.bad[0][1] === CHUNK + blockSize);
    // A range that does not touch the changed block passes.
    assert.deepEqual(await c.check(fd, "1:2", stub, 2 * CHUNK, 2 * CHUNK + 10), { ok: true });
  });
  await withFile(data.subarray(0, CHUNK), data.length, async (fd) => {
    const r = await c.check(fd, "1:3", stub, 0, data.length);
    assert.ok(!r.ok && r.why === "hole");
  });
});

test("a one-chunk file is checked against its whole-content sha256", async () => {
  const data = randomBytes(300 * 1024);
  const stub = stubFor(data, Buffer.from("unused"));
  const c = new ContentCheck();
  await withFile(data, data.length, async (fd) =>
    assert.deepEqual(await c.check(fd, "2:1", stub, 10, 20), { ok: true }),
  );
  const zeros = Buffer.alloc(data.length);
  await withFile(zeros, data.length, async (fd) => {
    const r = await c.check(fd, "2:2", stub, 10, 20);
    assert.ok(!r.ok && r.why === "mismatch" && r.bad[0][0] === 0 && r.bad[0][1] === data.length);
  });
});

test("blocks found equal are remembered per inode until forgotten; disabled, everything passes", async () => {
  const data = randomBytes(2 * CHUNK);
  const manifest = manifestOf(data);
  const stub = stubFor(data, manifest);
  const c = new ContentCheck();
  c.accept(stub, manifest);
  await withFile(data, data.length, async (fd) => {
    assert.deepEqual(await c.check(fd, "3:1", stub, 0, data.length), { ok: true });
    writeSync(fd, Buffer.alloc(10), 0, 10, 0);
    assert.deepEqual(await c.check(fd, "3:1", stub, 0, 10), { ok: true }, "remembered");
    c.forget("3:1");
    assert.equal((await c.check(fd, "3:1", stub, 0, 10)).ok, false, "checked again after forget");
    assert.deepEqual(await new ContentCheck(false).check(fd, "3:1", stub, 0, 10), { ok: true });
  });
});

test("unchecked (bench only): a range passes when its bytes are there, never over a hole", async () => {
  const data = randomBytes(2 * CHUNK);
  const stub = stubFor(data, manifestOf(data));
  await withFile(data.subarray(0, CHUNK), data.length, async (fd) => {
    const unchecked = new ContentCheck(false);
    assert.deepEqual(await unchecked.check(fd, "4:1", stub, 0, CHUNK), { ok: true });
    assert.equal((await unchecked.check(fd, "4:1", stub, CHUNK - 10, CHUNK + 10)).ok, false, "a hole passed");
  });
});

test("vouch: the file hashed here must be the archive's content and the manifest's blocks", async () => {
  const data = randomBytes(2 * CHUNK + 7);
  const manifest = manifestOf(data);
  const stub = stubFor(data, manifest);
  await withFile(data, data.length, async (fd) => {
    assert.deepEqual(await new ContentCheck().vouch(fd, stub, manifest), { ok: true });
    assert.equal((await new ContentCheck().vouch(fd, { ...stub, contentSha256: "0".repeat(64) }, manifest)).ok, false);
    const other = manifestOf(randomBytes(data.length));
    assert.equal((await new ContentCheck().vouch(fd, { ...stub, manifestSha256: sha256Hex(other) }, other)).ok, false);
  });
  const changed = Buffer.from(data);
  changed[data.length - 1] ^= 1;
  await withFile(changed, data.length, async (fd) => {
    const r = await new ContentCheck().vouch(fd, stub, manifest);
    assert.ok(!r.ok && /block 8 differs/.test(r.why), JSON.stringify(r));
  });
  await withFile(data, data.length, async (fd) => {
    ftruncateSync(fd, CHUNK + 5);
    const r = await new ContentCheck().vouch(fd, stub, manifest);
    assert.ok(!r.ok && /ends inside block 4/.test(r.why), JSON.stringify(r));
  });
});

test("blocks after a hole are still checked (the hole is jumped over, not the data after it)", async () => {
  const data = randomBytes(4 * CHUNK);
  const manifest = manifestOf(data);
  const stub = stubFor(data, manifest);
  const c = new ContentCheck();
  c.accept(stub, manifest);
  await withFile(null, data.length, async (fd) => {
    // Data in chunk 0 and chunk 3 only; chunks 1 and 2 are a hole.
    writeSync(fd, data, 0, CHUNK, 0);
    writeSync(fd, data, 3 * CHUNK, CHUNK, 3 * CHUNK);
    const r = await c.check(fd, "4:1", stub, 0, data.length);
    assert.ok(!r.ok && r.why === "hole");
    // Chunk 3 was hashed in that pass: changing it now goes unnoticed until forgotten.
    writeSync(fd, Buffer.alloc(10), 0, 10, 3 * CHUNK);
    assert.deepEqual(await c.check(fd, "4:1", stub, 3 * CHUNK, 4 * CHUNK), { ok: true });
    c.forget("4:1");
    assert.equal((await c.check(fd, "4:1", stub, 3 * CHUNK, 4 * CHUNK)).ok, false);
  });
});

test("blocks read together are judged one by one: each changed block is named, the ones between pass", async () => {
  const data = randomBytes(3 * CHUNK + 100);
  const manifest = manifestOf(data);
  const stub = stubFor(data, manifest);
  const block = 256 * 1024;
  const c = new ContentCheck();
  c.accept(stub, manifest);
  const changed = Buffer.from(data);
  // Blocks 1 and 3 (in the same 1 MiB read) and the file's short last block.
  for (const at of [block + 1, 3 * block + 7, data.length - 1]) changed[at] ^= 0x55;
  await withFile(changed, data.length, async (fd) => {
    const r = await c.check(fd, "5:1", stub, 0, data.length);
    assert.ok(!r.ok && r.why === "mismatch", JSON.stringify(r));
    assert.deepEqual(r.bad, [
      [block, 2 * block],
      [3 * block, 4 * block],
      [12 * block, data.length],
    ]);
    // The others were found equal and are remembered: a range over them alone passes.
    assert.deepEqual(await c.check(fd, "5:1", stub, 2 * block, 3 * block), { ok: true });
    assert.deepEqual(await c.check(fd, "5:1", stub, 4 * block, 12 * block), { ok: true });
  });
});
