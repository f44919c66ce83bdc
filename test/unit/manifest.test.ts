// Chunk manifests: built incrementally in any slicing, checked against the trusted sha256.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { ManifestBuilder, decodeManifest, encodeManifest, sha256Hex } from "../../recall-service/manifest.js";
import { RecallError } from "../../recall-service/errors.js";

test("the manifest does not depend on how the data was sliced", () => {
  const data = randomBytes(10 * 4096 + 17);
  const a = new ManifestBuilder(8192);
  a.update(data);
  const b = new ManifestBuilder(8192);
  for (let i = 0; i < data.length; i += 1000) b.update(data.subarray(i, i + 1000));
  const ma = a.finish();
  assert.deepEqual(ma, b.finish());
  assert.equal(ma.chunks.length, 6);
  assert.equal(ma.sha256, createHash("sha256").update(data).digest("hex"));
  assert.equal(ma.chunks[5], sha256Hex(data.subarray(5 * 8192)));
});

test("an empty file has no chunks", () => {
  const m = new ManifestBuilder(4096).finish();
  assert.equal(m.size, 0);
  assert.deepEqual(m.chunks, []);
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
