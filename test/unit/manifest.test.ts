// Block manifests: built incrementally in any slicing, checked against the trusted sha256;
// version 1 (per-chunk) manifests still decode.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import {
  BLOCK_SIZE,
  ManifestBuilder,
  decodeManifest,
  encodeManifest,
  sha256Hex,
} from "../../recall-service/manifest.js";
import { RecallError } from "../../recall-service/errors.js";

test("the manifest does not depend on how the data was sliced", () => {
  const data = randomBytes(10 * 4096 + 17);
  const a = new ManifestBuilder(8192);
  a.update(data);
  const b = new ManifestBuilder(8192);
  for (let i = 0; i < data.length; i += 1000) b.update(data.subarray(i, i + 1000));
  const ma = a.finish();
  assert.deepEqual(ma, b.finish());
  assert.equal(ma.blocks.length, 6);
  assert.equal(ma.sha256, createHash("sha256").update(data).digest("hex"));
  assert.equal(ma.blocks[5], sha256Hex(data.subarray(5 * 8192)));
});

test("an empty file has no chunks", () => {
  const m = new ManifestBuilder(4096).finish();
  assert.equal(m.size, 0);
  assert.deepEqual(m.blocks, []);
});

test("a manifest whose sha256 differs from the stub's is refused", () => {
  const m = new ManifestBuilder(4096);
  m.update(Buffer.from("hello"));
  const raw = encodeManifest(m.finish());
  assert.equal(decodeManifest(raw, sha256Hex(raw), { size: 5, chunkSize: 4096 }).size, 5);
  const forged = Buffer.from(raw.toString().replace("hello".length.toString(), "6"));
  assert.throws(() => decodeManifest(forged, sha256Hex(raw), { size: 5, chunkSize: 4096 }), RecallError);
  assert.throws(() => decodeManifest(raw, sha256Hex(raw), { size: 6, chunkSize: 4096 }), RecallError);
});

test("a chunk larger than a block is hashed per 256 KiB block (version 2)", () => {
  const data = randomBytes(2 * 1024 * 1024 + 5);
  const b = new ManifestBuilder(1024 * 1024);
  b.update(data);
  const m = b.finish();
  assert.equal(m.version, 2);
  assert.equal(m.blockSize, BLOCK_SIZE);
  assert.equal(m.blocks.length, 9);
  assert.equal(m.blocks[8], sha256Hex(data.subarray(8 * BLOCK_SIZE)));
  const raw = encodeManifest(m);
  const d = decodeManifest(raw, sha256Hex(raw), { size: data.length, chunkSize: 1024 * 1024 });
  assert.equal(d.blockSize, BLOCK_SIZE);
  assert.deepEqual(d.blocks, m.blocks);
});

test("a version 1 manifest (one sha256 per chunk) still decodes, with the chunk as the block", () => {
  const data = randomBytes(3 * 8192 + 1);
  const chunks = [0, 1, 2, 3].map((i) => sha256Hex(data.subarray(i * 8192, (i + 1) * 8192)));
  const raw = encodeManifest({ version: 1, size: data.length, chunkSize: 8192, sha256: sha256Hex(data), chunks });
  const d = decodeManifest(raw, sha256Hex(raw), { size: data.length, chunkSize: 8192 });
  assert.equal(d.version, 1);
  assert.equal(d.blockSize, 8192);
  assert.deepEqual(d.blocks, chunks);
  const short = encodeManifest({ version: 1, size: data.length, chunkSize: 8192, sha256: "", chunks: chunks.slice(1) });
  assert.throws(() => decodeManifest(short, sha256Hex(short), { size: data.length, chunkSize: 8192 }), RecallError);
});

test("a manifest whose block size does not divide the chunk size is refused", () => {
  const raw = encodeManifest({
    version: 2,
    size: 10,
    chunkSize: 8192,
    blockSize: 3000,
    sha256: "",
    blocks: ["0".repeat(64)],
  });
  assert.throws(() => decodeManifest(raw, sha256Hex(raw), { size: 10, chunkSize: 8192 }), RecallError);
});
