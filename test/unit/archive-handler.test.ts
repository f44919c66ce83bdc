// The archive handler over an in-memory (versioned) store, reading a temporary file through
// an fd sent on a real fd channel (no root). Archive stores the bytes and a manifest whose
// digests are recomputed here independently, and answers the version ids the store gave;
// Verify finds an unchanged file equal and returns the manifest read back by version id,
// and finds a changed file not equal.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import * as native from "../../native/index.js";
import {
  ArchiveRequestSchema,
  FdMessageType,
  VerifyRequestSchema,
  encodeFdHeader,
  reasonFromProto,
} from "../../proto/index.js";
import { ArchiveHandler } from "../../recall-service/archive-handler.js";
import { FdInbox } from "../../recall-service/fd-inbox.js";
import { ManifestLoader } from "../../recall-service/manifest-loader.js";
import { decodeManifest, manifestKey } from "../../recall-service/manifest.js";
import { MemoryStore } from "../helpers/memory-store.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = MiB;
const BLOCK = 256 * KiB;
const log = pino({ level: "silent" });
const uid = process.getuid?.() ?? 0;
const never = new AbortController().signal;

let dir = "";
let inbox: FdInbox;
let conn = -1;
let nextId = 1n;
let nextFile = 0;
const openFds: number[] = [];

before(() => {
  dir = mkdtempSync(join(tmpdir(), "fanrecall-archive-handler-"));
  inbox = new FdInbox({ path: join(dir, "fd.sock"), peerUid: uid, parkMs: 10_000, log });
  conn = native.seqpacketConnect(join(dir, "fd.sock"));
});
after(() => {
  native.close(conn);
  inbox.close();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(() => {
  for (const fd of openFds.splice(0)) closeSync(fd);
});

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

function setup() {
  const store = new MemoryStore({ versioned: true, partBytes: 100 * KiB });
  const handler = new ArchiveHandler({
    inbox,
    manifests: new ManifestLoader(store),
    store,
    bucket: "default-bucket",
    keyPrefix: "auto/",
    defaultChunkSize: 4 * MiB,
    log,
    fdWaitMs: 1000,
  });
  return { store, handler };
}

/** A temporary file holding `data`, open read-write; the test keeps this fd. */
function fileWith(data: Buffer): number {
  const path = join(dir, `file-${nextFile++}`);
  writeFileSync(path, data);
  const fd = openSync(path, "r+");
  openFds.push(fd);
  return fd;
}

/** Sends `fd` on the fd channel under a new request id, as the listener does. */
function offer(fd: number): bigint {
  const requestId = nextId++;
  assert.equal(native.sendWithFd(conn, encodeFdHeader({ type: FdMessageType.FD_OFFER, requestId }), fd), true);
  return requestId;
}

function identity(fd: number) {
  const st = native.fstat(fd);
  return { dev: BigInt(st.dev), ino: BigInt(st.ino), size: BigInt(st.size), mtimeNs: st.mtimeNs };
}

function archiveRequest(
  fd: number,
  over: { bucket?: string; key?: string; chunkSize?: bigint; requestId?: bigint } = {},
) {
  return create(ArchiveRequestSchema, {
    requestId: over.requestId ?? offer(fd),
    file: identity(fd),
    bucket: over.bucket ?? "b",
    key: over.key ?? "files/a",
    chunkSize: over.chunkSize ?? BigInt(CHUNK),
  });
}

type ArchiveReply = Awaited<ReturnType<ArchiveHandler["archive"]>>;

function verifyRequest(fd: number, archived: ArchiveReply) {
  return create(VerifyRequestSchema, {
    requestId: offer(fd),
    file: identity(fd),
    object: archived.object,
    integrity: archived.integrity,
  });
}

const reasonOf = (r: { reason?: number }) => reasonFromProto(r.reason ?? 0);

describe("archive handler", () => {
  test("archive stores the bytes and a manifest with correct digests, and returns the version ids", async () => {
    const { store, handler } = setup();
    const data = randomBytes(2 * CHUNK + 3 * BLOCK + 777);
    const fd = fileWith(data);
    const reply = await handler.archive(archiveRequest(fd));
    assert.equal(reasonOf(reply), "archived", reply.message);
    assert.equal(reply.size, BigInt(data.length));
    assert.ok(store.bytes("b", "files/a").equals(data));
    assert.deepEqual(reply.object, {
      bucket: "b",
      key: "files/a",
      versionId: store.versions("b", "files/a")[0],
      manifestVersionId: store.versions("b", manifestKey("files/a"))[0],
    });
    assert.notEqual(reply.object?.versionId, "");
    assert.notEqual(reply.object?.versionId, reply.object?.manifestVersionId);
    const raw = store.bytes("b", manifestKey("files/a"));
    assert.deepEqual(reply.integrity, {
      contentSha256: sha256(data),
      manifestSha256: sha256(raw),
      chunkSize: BigInt(CHUNK),
    });
    const m = decodeManifest(raw, sha256(raw), { size: data.length, chunkSize: CHUNK });
    const blocks: string[] = [];
    for (let at = 0; at < data.length; at += BLOCK) blocks.push(sha256(data.subarray(at, at + BLOCK)));
    assert.equal(m.blockSize, BLOCK);
    assert.equal(m.sha256, sha256(data));
    assert.deepEqual(m.blocks, blocks);
    assert.equal(store.metadata("b", "files/a")["x-amz-meta-fanrecall-size"], String(data.length));
    assert.equal(store.metadata("b", "files/a")["x-amz-meta-fanrecall-chunk-size"], String(CHUNK));
  });

  test("archive without bucket, key or chunk size uses the configured ones and creates the bucket", async () => {
    const { store, handler } = setup();
    const data = randomBytes(5000);
    const fd = fileWith(data);
    const reply = await handler.archive(archiveRequest(fd, { bucket: "", key: "", chunkSize: 0n }));
    assert.equal(reasonOf(reply), "archived", reply.message);
    assert.equal(reply.object?.bucket, "default-bucket");
    const key = reply.object?.key ?? "";
    assert.match(key, /^auto\/[0-9a-f-]{36}$/);
    assert.equal(reply.integrity?.chunkSize, BigInt(4 * MiB));
    assert.ok(store.hasBucket("default-bucket"));
    assert.ok(store.bytes("default-bucket", key).equals(data));
  });

  test("archive of an empty file stores an empty object and a manifest without blocks", async () => {
    const { store, handler } = setup();
    const fd = fileWith(Buffer.alloc(0));
    const reply = await handler.archive(archiveRequest(fd));
    assert.equal(reasonOf(reply), "archived", reply.message);
    assert.equal(store.bytes("b", "files/a").length, 0);
    const raw = store.bytes("b", manifestKey("files/a"));
    assert.deepEqual(decodeManifest(raw, sha256(raw), { size: 0, chunkSize: CHUNK }).blocks, []);
  });

  test("archive of an fd that is not the file the request names is a protocol error; nothing is stored", async () => {
    const { store, handler } = setup();
    const named = fileWith(randomBytes(1000));
    const other = fileWith(randomBytes(1000));
    const reply = await handler.archive(archiveRequest(named, { requestId: offer(other) }));
    assert.equal(reasonOf(reply), "protocol-error");
    assert.deepEqual(store.versions("b", "files/a"), []);
  });

  test("archive with no fd for the request answers fd-missing", async () => {
    const { handler } = setup();
    const fd = fileWith(randomBytes(10));
    const reply = await handler.archive(archiveRequest(fd, { requestId: 424_242n }));
    assert.equal(reasonOf(reply), "fd-missing");
  });

  test("verify of an unchanged file is equal and returns the manifest read back by its version id", async () => {
    const { store, handler } = setup();
    const data = randomBytes(2 * CHUNK + 100);
    const fd = fileWith(data);
    const archived = await handler.archive(archiveRequest(fd));
    const raw = Buffer.from(store.bytes("b", manifestKey("files/a")));
    // A later manifest version under the same key must not be the one read back.
    await store.put("b", manifestKey("files/a"), Buffer.from("{}"), 2, {});
    const reply = await handler.verify(verifyRequest(fd, archived), never);
    assert.equal(reply.equal, true, reply.message);
    assert.equal(reasonOf(reply), "verified");
    assert.ok(reply.manifest && Buffer.from(reply.manifest).equals(raw));
    const mget = store.gets.filter((g) => g.key === manifestKey("files/a"));
    assert.deepEqual(
      mget.map((g) => g.versionId),
      [archived.object?.manifestVersionId],
    );
  });

  test("verify of a file changed after archiving is not equal", async () => {
    const { handler } = setup();
    const data = randomBytes(CHUNK + 5000);
    const fd = fileWith(data);
    const archived = await handler.archive(archiveRequest(fd));
    writeSync(fd, Buffer.from([data[CHUNK + 10] ^ 1]), 0, undefined, CHUNK + 10);
    const reply = await handler.verify(verifyRequest(fd, archived), never);
    assert.equal(reply.equal, false);
    assert.equal(reasonOf(reply), "mismatch");
    assert.match(reply.message ?? "", /differs at byte/);
    assert.ok(!reply.manifest || reply.manifest.length === 0);
  });

  test("verify of a file that grew is not equal", async () => {
    const { handler } = setup();
    const fd = fileWith(randomBytes(3000));
    const archived = await handler.archive(archiveRequest(fd));
    writeSync(fd, Buffer.from("more"), 0, undefined, 3000);
    const reply = await handler.verify(verifyRequest(fd, archived), never);
    assert.equal(reply.equal, false);
    assert.equal(reasonOf(reply), "mismatch");
  });

  test("verify against a content hash the stored copy does not have is not equal", async () => {
    const { handler } = setup();
    const fd = fileWith(randomBytes(3000));
    const archived = await handler.archive(archiveRequest(fd));
    const req = verifyRequest(fd, archived);
    req.integrity!.contentSha256 = "0".repeat(64);
    const reply = await handler.verify(req, never);
    assert.equal(reply.equal, false);
    assert.equal(reasonOf(reply), "mismatch");
  });

  test("verify when the stored copy is gone answers object-missing", async () => {
    const { handler } = setup();
    const fd = fileWith(randomBytes(3000));
    const archived = await handler.archive(archiveRequest(fd));
    const req = verifyRequest(fd, archived);
    req.object!.key = "files/never-stored";
    const reply = await handler.verify(req, never);
    assert.equal(reply.equal, false);
    assert.equal(reasonOf(reply), "object-missing");
  });
});
