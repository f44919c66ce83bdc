// Unit tests of the namespace format: names confined to their areas, records and snapshot
// lines checked as hostile input, parts bounded and checked against their marker.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import {
  MAX_PART_BYTES,
  NamespaceFormatError,
  decodeFileRecord,
  decodeSnapshotComplete,
  decodeSnapshotLine,
  defaultNamespace,
  encodeFileRecord,
  encodeSnapshotComplete,
  encodeSnapshotLine,
  isNamespaceName,
  isNamespaceObjectName,
  isRelativePath,
  packParts,
  partLines,
  recordName,
  snapshotCompleteName,
  snapshotPartName,
  timeOfName,
} from "../../proto/namespace-format.js";
import type { FileRecord } from "../../proto/namespace-format.js";

const record: FileRecord = {
  path: "videos/2019/a b.mp4",
  size: 123456,
  uid: 1234,
  gid: 100,
  mode: 0o640,
  mtimeNs: 1_600_000_000_123_456_789n,
  atimeNs: 1_600_000_001_000_000_000n,
  bucket: "fanrecall",
  key: "fanrecall/node1-srv/objects/0b6f0c1e-7d1c-4f4e-9d39-3f1d1c0e5a11",
  versionId: "",
  manifestVersionId: "",
  chunkSize: 8 * 1024 * 1024,
  contentSha256: "a".repeat(64),
  manifestSha256: "b".repeat(64),
  recordedAtMs: 1_700_000_000_000,
};

test("a default namespace comes from the host name and the watch path, and is a valid name", () => {
  assert.equal(defaultNamespace("node1", "/srv/video"), "node1-srv-video");
  assert.equal(defaultNamespace("Node1.example.com", "/srv/Vid eo/"), "node1.example.com-srv-vid_eo");
  assert.equal(defaultNamespace("h", "/"), "h-root");
  assert.ok(isNamespaceName(defaultNamespace("x".repeat(300), "/a")));
  assert.equal(defaultNamespace("node1", "/srv/video"), defaultNamespace("node1", "/srv/video"));
});

test("namespace and object names refuse escapes and other areas", () => {
  for (const bad of ["", "..", "a..b", "A", "-a", "a/b", "a b", "x".repeat(101)])
    assert.equal(isNamespaceName(bad), false, bad);
  assert.equal(isNamespaceObjectName("records/000000000000001-abc.json"), true);
  assert.equal(isNamespaceObjectName("snapshots/000000000000001/part-00000.ndjson"), true);
  for (const bad of [
    "../x",
    "objects/../../other/objects/x",
    "objects/",
    "other/x",
    "objects/a/b/c",
    "objects/.hidden",
    "records/a..b",
  ]) {
    assert.equal(isNamespaceObjectName(bad), false, bad);
  }
});

test("relative paths have no empty, '.' or '..' part", () => {
  assert.equal(isRelativePath("a/b/c.txt"), true);
  for (const bad of ["", "/a", "a/", "a//b", "./a", "a/../b", "..", "a\0b", `${"x".repeat(256)}/a`]) {
    assert.equal(isRelativePath(bad), false, JSON.stringify(bad));
  }
});

test("a record survives a round trip and hostile records are refused", () => {
  assert.deepEqual(decodeFileRecord(encodeFileRecord(record)), record);
  const base = JSON.parse(encodeFileRecord(record)) as Record<string, unknown>;
  const hostile: Array<Record<string, unknown>> = [
    { ...base, p: "../etc/passwd" },
    { ...base, p: "/etc/passwd" },
    { ...base, m: 0o10777 },
    { ...base, u: -1 },
    { ...base, u: 2 ** 32 },
    { ...base, sha: "z".repeat(64) },
    { ...base, cs: 1000 },
    { ...base, mt: "-1" },
    { ...base, k: "a\nb" },
    { ...base, v: 2 },
    { ...base, t: undefined },
  ];
  for (const h of hostile)
    assert.throws(() => decodeFileRecord(JSON.stringify(h)), NamespaceFormatError, JSON.stringify(h));
  assert.throws(() => decodeFileRecord("[]"), NamespaceFormatError);
  assert.throws(() => decodeFileRecord("{"), NamespaceFormatError);
  assert.throws(() => decodeFileRecord(" ".repeat(9000) + "{}"), NamespaceFormatError);
  assert.throws(() => encodeFileRecord({ ...record, path: "a/../b" }), NamespaceFormatError);
});

test("record and snapshot names sort in time order and carry their time", () => {
  const a = recordName(record.key, 5);
  const b = recordName(record.key, 1_700_000_000_000);
  assert.ok(a < b);
  assert.equal(timeOfName(a), 5);
  assert.equal(timeOfName(snapshotPartName(42, 3)), 42);
  assert.equal(snapshotCompleteName(42), "snapshots/000000000000042/complete.json");
  assert.ok(isNamespaceObjectName(a) && isNamespaceObjectName(snapshotPartName(42, 3)));
  assert.throws(() => recordName("prefix/ns/objects/a b", 1), NamespaceFormatError);
});

test("snapshot lines, parts and marker: round trip, size bound, and a part must hash to its marker", () => {
  const lines = [
    encodeSnapshotLine({ file: record }),
    encodeSnapshotLine({ orphan: { name: "objects/x", sinceMs: 7 } }),
  ];
  assert.deepEqual(decodeSnapshotLine(lines[0]), { file: record });
  assert.deepEqual(decodeSnapshotLine(lines[1]), { orphan: { name: "objects/x", sinceMs: 7 } });
  assert.throws(() => decodeSnapshotLine(JSON.stringify({ o: "../x", since: 1 })), NamespaceFormatError);
  const many = Array.from({ length: 30_000 }, () => lines[0]);
  const parts = packParts(many);
  assert.ok(parts.length > 1);
  for (const p of parts) assert.ok(p.length <= MAX_PART_BYTES);
  const shas = parts.map((p) => createHash("sha256").update(p).digest("hex"));
  assert.equal(
    parts.reduce((n, p, i) => n + partLines(p, shas[i]).length, 0),
    many.length,
  );
  const tampered = Buffer.from(parts[0]);
  tampered[10] ^= 1;
  assert.throws(() => partLines(tampered, shas[0]), NamespaceFormatError);
  const marker = { namespace: "node1-srv", takenAtMs: 9, files: many.length, parts: shas };
  assert.deepEqual(decodeSnapshotComplete(encodeSnapshotComplete(marker)), marker);
  assert.throws(
    () => decodeSnapshotComplete(Buffer.from('{"v":1,"ns":"../x","t":1,"files":0,"parts":[]}')),
    NamespaceFormatError,
  );
});
