// Unit tests of the recall service's namespace RPCs on an in-memory store: every name stays
// inside PREFIX/NAMESPACE/, another namespace is never listed, read or deleted, records must
// name their own namespace's objects, and deletions are audit records.
import assert from "node:assert/strict";
import { test } from "node:test";
import pino from "pino";
import { create } from "@bufbuild/protobuf";
import { Reason } from "../../proto/index.js";
import {
  DeleteNamespaceObjectsRequestSchema,
  GetNamespaceObjectRequestSchema,
  ListNamespaceRequestSchema,
  PutNamespaceObjectRequestSchema,
  WriteRecordRequestSchema,
} from "../../proto/index.js";
import { encodeFileRecord } from "../../proto/namespace-format.js";
import { NamespaceHandler } from "../../recall-service/namespace-handler.js";
import { MemoryStore } from "../helpers/memory-store.js";

const BUCKET = "fanrecall";
const signal = () => AbortSignal.timeout(5_000);

function setup() {
  const store = new MemoryStore();
  const lines: string[] = [];
  const log = pino({ level: "info" }, { write: (l: string) => void lines.push(l) });
  const h = new NamespaceHandler({ store, bucket: BUCKET, keyPrefix: "fanrecall/", log });
  return { store, h, lines };
}

async function put(store: MemoryStore, key: string, body = "x"): Promise<void> {
  await store.ensureBucket(BUCKET);
  await store.put(BUCKET, key, Buffer.from(body), Buffer.byteLength(body), {});
}

const record = (key: string) =>
  encodeFileRecord({
    path: "a/b.txt",
    size: 1,
    uid: 1,
    gid: 1,
    mode: 0o644,
    mtimeNs: 1n,
    atimeNs: 1n,
    bucket: BUCKET,
    key,
    versionId: "",
    manifestVersionId: "",
    chunkSize: 4096,
    contentSha256: "a".repeat(64),
    manifestSha256: "b".repeat(64),
    recordedAtMs: 1,
  });

test("a listing sees its own namespace's area only, in pages", async () => {
  const { store, h } = setup();
  for (let i = 0; i < 5; i++) await put(store, `fanrecall/ns1/objects/o${i}`);
  await put(store, "fanrecall/ns1x/objects/other");
  await put(store, "fanrecall/ns2/objects/other");
  await put(store, "fanrecall/ns1/records/000000000000001-o1.json");
  const first = await h.list(
    create(ListNamespaceRequestSchema, { namespace: "ns1", area: "objects", maxKeys: 3 }),
    signal(),
  );
  assert.deepEqual(
    first.objects?.map((o) => o.name),
    ["objects/o0", "objects/o1", "objects/o2"],
  );
  assert.equal(first.truncated, true);
  const rest = await h.list(
    create(ListNamespaceRequestSchema, { namespace: "ns1", area: "objects", startAfter: "objects/o2" }),
    signal(),
  );
  assert.deepEqual(
    rest.objects?.map((o) => o.name),
    ["objects/o3", "objects/o4"],
  );
  assert.equal(rest.truncated, false);
  for (const bad of [
    { namespace: "../ns2", area: "objects" },
    { namespace: "ns1", area: "../ns2/objects" },
    { namespace: "ns1", area: "objects", startAfter: "../../ns2/objects/a" },
    { namespace: "", area: "objects" },
  ]) {
    const r = await h.list(create(ListNamespaceRequestSchema, bad), signal());
    assert.equal(r.reason, Reason.INVALID_PATH, JSON.stringify(bad));
    assert.equal(r.objects, undefined);
  }
});

test("reads serve records and snapshots only; writes go to snapshots only", async () => {
  const { store, h } = setup();
  await put(store, "fanrecall/ns1/objects/o1", "secret data");
  await put(store, "fanrecall/ns1/records/000000000000001-o1.json", "0123456789");
  const got = await h.get(
    create(GetNamespaceObjectRequestSchema, {
      namespace: "ns1",
      name: "records/000000000000001-o1.json",
      offset: 2n,
      length: 3,
    }),
    signal(),
  );
  assert.equal(Buffer.from(got.data ?? []).toString(), "234");
  assert.equal(got.size, 10n);
  const data = await h.get(
    create(GetNamespaceObjectRequestSchema, { namespace: "ns1", name: "objects/o1", length: 5 }),
    signal(),
  );
  assert.equal(data.reason, Reason.INVALID_PATH);
  const ok = await h.put(
    create(PutNamespaceObjectRequestSchema, {
      namespace: "ns1",
      name: "snapshots/000000000000009/complete.json",
      data: Buffer.from("{}"),
    }),
  );
  assert.equal(ok.reason, Reason.STORED);
  const overwrite = await h.put(
    create(PutNamespaceObjectRequestSchema, { namespace: "ns1", name: "objects/o1", data: Buffer.from("evil") }),
  );
  assert.equal(overwrite.reason, Reason.INVALID_PATH);
  assert.equal(store.bytes(BUCKET, "fanrecall/ns1/objects/o1").toString(), "secret data");
});

test("a record must name an object of its own namespace", async () => {
  const { store, h } = setup();
  await store.ensureBucket(BUCKET);
  const mine = await h.writeRecord(
    create(WriteRecordRequestSchema, { namespace: "ns1", record: record("fanrecall/ns1/objects/o1") }),
  );
  assert.equal(mine.reason, Reason.STORED);
  assert.match(mine.name ?? "", /^records\/\d{15}-o1\.json$/);
  for (const key of ["fanrecall/ns2/objects/o1", "fanrecall/ns1/records/o1", "other/ns1/objects/o1"]) {
    const r = await h.writeRecord(create(WriteRecordRequestSchema, { namespace: "ns1", record: record(key) }));
    assert.equal(r.reason, Reason.INVALID_PATH, key);
  }
  const garbage = await h.writeRecord(create(WriteRecordRequestSchema, { namespace: "ns1", record: "{" }));
  assert.notEqual(garbage.reason, Reason.STORED);
});

test("deletion is confined to the namespace and audited", async () => {
  const { store, h, lines } = setup();
  await put(store, "fanrecall/ns1/objects/o1");
  await put(store, "fanrecall/ns2/objects/o1");
  const bad = await h.delete(
    create(DeleteNamespaceObjectsRequestSchema, { namespace: "ns1", names: ["objects/o1", "../ns2/objects/o1"] }),
  );
  assert.equal(bad.reason, Reason.INVALID_PATH);
  assert.equal(store.bytes(BUCKET, "fanrecall/ns1/objects/o1").toString(), "x", "nothing deleted when one name is bad");
  const ok = await h.delete(
    create(DeleteNamespaceObjectsRequestSchema, { namespace: "ns1", names: ["objects/o1"], why: "unreferenced" }),
  );
  assert.equal(ok.deleted, 1);
  assert.throws(() => store.bytes(BUCKET, "fanrecall/ns1/objects/o1"));
  assert.equal(store.bytes(BUCKET, "fanrecall/ns2/objects/o1").toString(), "x");
  const audit = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.audit === "delete");
  assert.equal(audit?.key, "fanrecall/ns1/objects/o1");
  assert.equal(audit?.reason, "deleted");
});
