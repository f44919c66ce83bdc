// Unit tests of namespace history: snapshots round trip through the recall service's
// namespace handler on an in-memory store, a tampered snapshot is refused (and an older one
// used), records since a snapshot move and replace files, and retention never plans to
// delete an object a file refers to or one written after the walk began.
import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import pino from "pino";
import {
  GetNamespaceObjectRequestSchema,
  ListNamespaceRequestSchema,
  PutNamespaceObjectRequestSchema,
} from "../../proto/index.js";
import type { FileRecord } from "../../proto/namespace-format.js";
import { snapshotPartName } from "../../proto/namespace-format.js";
import { NamespaceHandler } from "../../recall-service/namespace-handler.js";
import type { ListedName } from "../../cli/namespace-client.js";
import {
  expiredSnapshots,
  latestSnapshot,
  mergeHistory,
  planRetention,
  writeSnapshot,
} from "../../cli/namespace-history.js";
import type { NamespaceWriter } from "../../cli/namespace-history.js";
import { MemoryStore } from "../helpers/memory-store.js";

const BUCKET = "fanrecall";
const DAY = 86_400_000;

/** A NamespaceWriter straight over the handler (what NamespaceClient does over gRPC). */
function writerOver(store: MemoryStore, namespace: string): NamespaceWriter {
  const h = new NamespaceHandler({ store, bucket: BUCKET, keyPrefix: "fanrecall/", log: pino({ level: "silent" }) });
  const signal = () => AbortSignal.timeout(5_000);
  return {
    namespace,
    async *list(area, startAfter = "") {
      const r = await h.list(create(ListNamespaceRequestSchema, { namespace, area, startAfter }), signal());
      for (const o of r.objects ?? [])
        yield { name: o.name ?? "", size: Number(o.size), lastModifiedMs: Number(o.lastModifiedUnixMs) };
    },
    async read(name, maxBytes) {
      const r = await h.get(create(GetNamespaceObjectRequestSchema, { namespace, name, length: maxBytes }), signal());
      if (r.data === undefined) throw new Error(r.message ?? "read failed");
      return Buffer.from(r.data);
    },
    async put(name, data) {
      const r = await h.put(create(PutNamespaceObjectRequestSchema, { namespace, name, data }));
      if (r.message) throw new Error(r.message);
    },
  };
}

function rec(path: string, id: string, t: number): FileRecord {
  return {
    path,
    size: 10,
    uid: 1000,
    gid: 1000,
    mode: 0o644,
    mtimeNs: 1n,
    atimeNs: 2n,
    bucket: BUCKET,
    key: `fanrecall/ns1/objects/${id}`,
    versionId: "",
    manifestVersionId: "",
    chunkSize: 4096,
    contentSha256: "a".repeat(64),
    manifestSha256: "b".repeat(64),
    recordedAtMs: t,
  };
}

test("a snapshot round trips; a tampered one is refused and the one before it is used", async () => {
  const store = new MemoryStore();
  await store.ensureBucket(BUCKET);
  const w = writerOver(store, "ns1");
  await writeSnapshot(w, 1000, [rec("a", "o1", 1)], []);
  await writeSnapshot(w, 2000, [rec("a", "o1", 1), rec("b", "o2", 2)], [{ name: "objects/o9", sinceMs: 5 }]);
  const problems: string[] = [];
  const s = await latestSnapshot(w, problems);
  assert.equal(s?.takenAtMs, 2000);
  assert.deepEqual(
    s?.files.map((f) => f.path),
    ["a", "b"],
  );
  assert.deepEqual(s?.orphans, [{ name: "objects/o9", sinceMs: 5 }]);
  store.corrupt(BUCKET, `fanrecall/ns1/${snapshotPartName(2000, 0)}`, 3);
  const fallback = await latestSnapshot(w, problems);
  assert.equal(fallback?.takenAtMs, 1000);
  assert.match(problems.join("\n"), /differs from its marker/);
  assert.equal((await latestSnapshot(w, [], 999)) ?? null, null);
  assert.equal((await latestSnapshot(writerOver(store, "ns2"), [])) ?? null, null, "another namespace sees none");
});

test("records after a snapshot move and replace files; older records change nothing", () => {
  const snapshot = { takenAtMs: 100, files: [rec("a", "o1", 1), rec("b", "o2", 1), rec("c", "o3", 1)], orphans: [] };
  const merged = mergeHistory(snapshot, [
    rec("old-name", "o1", 50),
    rec("b2", "o2", 150),
    rec("c", "o4", 160),
    rec("new", "o5", 170),
  ]);
  assert.deepEqual([...merged.keys()].sort(), ["a", "b2", "c", "new"]);
  assert.equal(merged.get("c")?.key, "fanrecall/ns1/objects/o4");
  assert.equal(mergeHistory(null, [rec("x", "o1", 1)]).get("x")?.key, "fanrecall/ns1/objects/o1");
});

const listed = (name: string, lastModifiedMs: number): ListedName => ({ name, size: 1, lastModifiedMs });

test("retention: referenced and young objects stay; orphans wait their time, then go with manifest and records", () => {
  const now = 100 * DAY;
  const objects = [
    listed("objects/kept", 0),
    listed("objects/kept.fanrecall-manifest.json", 0),
    listed("objects/gone", 0),
    listed("objects/gone.fanrecall-manifest.json", 0),
    listed("objects/new", now - 1000),
    listed("objects/waiting", 0),
  ];
  const records = [
    listed("records/000000000000001-kept.json", 0),
    listed("records/000000000000001-gone.json", 0),
    listed("records/000000000000002-gone.json", 0),
    listed("records/000000000000003-new.json", now - 500),
  ];
  const plan = planRetention({
    referenced: new Set(["kept"]),
    objects,
    records,
    previous: [{ name: "objects/gone", sinceMs: now - 31 * DAY }],
    nowMs: now,
    retainMs: 30 * DAY,
    youngerThanMs: now - 10 * 60_000,
  });
  assert.deepEqual(plan.deletedIds, ["gone"]);
  assert.deepEqual(plan.deletions.sort(), [
    "objects/gone",
    "objects/gone.fanrecall-manifest.json",
    "records/000000000000001-gone.json",
    "records/000000000000002-gone.json",
  ]);
  assert.deepEqual(plan.orphans, [{ name: "objects/waiting", sinceMs: now }]);
  const atOnce = planRetention({
    referenced: new Set(["kept"]),
    objects,
    records,
    previous: [],
    nowMs: now,
    retainMs: 0,
    youngerThanMs: now - 10 * 60_000,
  });
  assert.deepEqual(atOnce.deletedIds.sort(), ["gone", "waiting"]);
  assert.ok(!atOnce.deletions.some((n) => n.includes("kept") || n.includes("new")));
});

test("snapshots expire after twice the retention, never the newest", () => {
  assert.deepEqual(expiredSnapshots([90 * DAY, 50 * DAY, 10 * DAY], 100 * DAY, 30 * DAY), [10 * DAY]);
  assert.deepEqual(expiredSnapshots([10 * DAY], 100 * DAY, 0), []);
  assert.deepEqual(expiredSnapshots([99 * DAY, 98 * DAY], 100 * DAY, 0), [98 * DAY]);
});
