// The dispatcher with fake collaborators (test/helpers/fake-listener.ts), on real sparse temp
// files: no root, no fanotify, no recall service. Event fds are plain read-only fds of the temp
// files; the stub state lives in an in-memory xattr; the listener's content check is the real
// one. Covers: resident files are allowed and ignore-marked; a stub's recall request carries
// the right id, file and ranges; nothing the reply says is believed (another request's id,
// bytes that are not the file's, a false "fully populated"); a restarting recall service is
// retried inside the deadline; overload answers EAGAIN at once; a recall rule denies a caller
// with its own errno and fetches nothing, and a low caller waits its turn.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { setImmediate as tick } from "node:timers/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as native from "../../native/index.js";
import type { AccessorInfo } from "../../listener/classify-access.js";
import type { Dispatcher } from "../../listener/dispatcher.js";
import { FAILURE_POLICY } from "../../listener/failure-policy.js";
import type { ListenerReason } from "../../listener/failure-policy.js";
import { parseRecallRules } from "../../listener/recall-rules.js";
import { encodeStubState } from "../../listener/stub-state.js";
import type { StoredState, StubState } from "../../listener/stub-state.js";
import { RecallMode } from "../../proto/index.js";
import { ManifestBuilder, encodeManifest, sha256Hex } from "../../recall-service/manifest.js";
import { fakeListener, keyOf, recallReply } from "../helpers/fake-listener.js";
import type {
  Answer,
  FakeChannel,
  FakeListenerOptions,
  FakeRecallClient,
  FakeSource,
  FakeStubXattr,
  FakeViews,
} from "../helpers/fake-listener.js";

const MIB = 1024 * 1024;
const BLOCK = 256 * 1024;
const EIO = 5;
const EAGAIN = 11;
/** No answer within this is a failure; generous for a loaded machine (deadlines here are <= 10 s). */
const ANSWER_BOUND_MS = 30_000;

interface Rig {
  readonly d: Dispatcher;
  readonly source: FakeSource;
  readonly channel: FakeChannel;
  readonly recall: FakeRecallClient;
  readonly views: FakeViews;
  readonly xattr: FakeStubXattr;
  readonly dir: string;
}

interface Stub {
  readonly path: string;
  readonly data: Buffer;
  readonly stub: StubState;
  readonly manifest: Buffer;
  /** Opens a new read-only "event fd" of the file (the dispatcher closes it when answered). */
  event(): number;
}

function rig(t: { after: (fn: () => void) => void }, opts: FakeListenerOptions = {}): Rig {
  const dir = mkdtempSync(join(tmpdir(), "dispatcher-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { dispatcher: d, source, channel, recall, views, xattr } = fakeListener(opts);
  return { d, source, channel, recall, views, xattr, dir };
}

/** A sparse file (all holes) of `size` bytes whose stub state names random content. */
function stubFile(r: Rig, name: string, size: number, chunkSize = MIB, state: StoredState = "released"): Stub {
  const path = join(r.dir, name);
  const data = randomBytes(size);
  const b = new ManifestBuilder(chunkSize);
  b.update(data);
  const manifest = encodeManifest(b.finish());
  const stub: StubState = {
    version: 1,
    state,
    bucket: "bucket",
    key: `objects/${name}`,
    versionId: "v1",
    manifestVersionId: "",
    size,
    mtimeNs: 1_600_000_000_123_456_789n,
    atimeNs: 1_600_000_000_000_000_000n,
    chunkSize,
    contentSha256: sha256Hex(data),
    manifestSha256: sha256Hex(manifest),
  };
  const fd = openSync(path, "w+");
  ftruncateSync(fd, size);
  r.xattr.preset(fd, encodeStubState(stub));
  closeSync(fd);
  return { path, data, stub, manifest, event: () => openSync(path, "r") };
}

/** Writes `bytes` at `offset` of the file, as the recall service does through its fd. */
function put(path: string, bytes: Buffer, offset = 0): void {
  const fd = openSync(path, "r+");
  try {
    writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    closeSync(fd);
  }
}

function reasonCount(d: Dispatcher, reason: ListenerReason): number {
  return d.counts.get(reason) ?? 0;
}

/** Every byte of the file is a hole (the bytes written were punched away). */
function allHoles(path: string): boolean {
  const fd = openSync(path, "r");
  try {
    return native.seekData(fd, 0) === -1;
  } finally {
    closeSync(fd);
  }
}

/** The answer for `fd`; a test fails (never hangs) when none comes within a generous bound. */
async function answered(r: Rig, fd: number): Promise<Answer> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`event fd ${fd} not answered within ${ANSWER_BOUND_MS} ms`)),
      ANSWER_BOUND_MS,
    );
  });
  try {
    return await Promise.race([r.source.answered(fd), late]);
  } finally {
    clearTimeout(timer);
  }
}

function answer(r: Rig, fd: number, range: { offset: number; count: number } | null = null): Promise<Answer> {
  r.d.onEvent({ mask: 0, fd, pid: 0, range });
  return answered(r, fd);
}

test("a file without stub state is allowed and ignore-marked, with no recall", async (t) => {
  const r = rig(t);
  const path = join(r.dir, "plain");
  writeFileSync(path, "hello");
  const fd = openSync(path, "r");
  const key = keyOf(fd);
  const a = await answer(r, fd);
  assert.deepEqual(a, { fd, verdict: "allow", errno: 0 });
  assert.deepEqual(r.source.ignored, [{ key, mode: "whole" }]);
  assert.equal(r.recall.recalls.length, 0);
  assert.equal(r.channel.sent.length, 0);
  assert.equal(reasonCount(r.d, "resident"), 1);
  assert.throws(() => native.fstat(fd), /EBADF/, "the event fd is closed once answered");
});

test("an archived file (data local) is allowed and ignore-marked, with no recall", async (t) => {
  const r = rig(t);
  const s = stubFile(r, "archived", 1000, MIB, "archived");
  put(s.path, s.data);
  const fd = s.event();
  const key = keyOf(fd);
  const a = await answer(r, fd);
  assert.equal(a.verdict, "allow");
  assert.deepEqual(r.source.ignored, [{ key, mode: "whole" }]);
  assert.equal(r.recall.recalls.length, 0);
  assert.equal(r.xattr.writes.length, 0);
});

test("a stub: the recall names the event's file and the request id sent with its fd; right bytes are allowed, the file becomes archived and ignore-marked", async (t) => {
  const r = rig(t);
  const s = stubFile(r, "whole", 100_000);
  r.recall.onRecall = (req) => {
    put(s.path, s.data);
    return recallReply(req.requestId, { fullyPopulated: true });
  };
  const fd = s.event();
  const st = native.fstat(fd);
  const a = await answer(r, fd);
  assert.deepEqual(a, { fd, verdict: "allow", errno: 0 });
  assert.equal(r.recall.recalls.length, 1);
  const { req } = r.recall.recalls[0];
  assert.equal(r.channel.sent.length, 1);
  assert.equal(r.channel.sent[0].requestId, req.requestId, "fd and RPC carry one id");
  assert.equal(r.channel.sent[0].key, `${st.dev}:${st.ino}`, "the fd sent is the event's inode");
  assert.equal(req.mode, RecallMode.WHOLE);
  assert.deepEqual(req.ranges, []);
  assert.equal(req.file?.ino, BigInt(st.ino));
  assert.equal(req.file?.size, 100_000n);
  assert.equal(req.object?.key, s.stub.key);
  assert.equal(req.integrity?.contentSha256, s.stub.contentSha256);
  assert.equal(req.wantManifest, false, "one chunk: checked by its content hash");
  assert.deepEqual(
    r.xattr.writes.map((w) => w.state.state),
    ["archived"],
  );
  assert.deepEqual(r.source.ignored, [{ key: `${st.dev}:${st.ino}`, mode: "whole" }]);
  assert.equal(reasonCount(r.d, "recalled"), 1);
  const check = openSync(s.path, "r");
  try {
    assert.equal(native.fstat(check).mtimeNs, s.stub.mtimeNs, "the file's times are restored");
  } finally {
    closeSync(check);
  }
});

test("a range read asks for exactly the event's range; a part recalled is partial and not ignore-marked, even when the reply claims fully populated", async (t) => {
  const r = rig(t, { modeOf: () => "range", classify: () => "read" });
  const s = stubFile(r, "ranged", 3 * BLOCK + 100, BLOCK);
  r.recall.onRecall = (req) => {
    // Only block 1 is written, but the reply claims the whole file.
    put(s.path, s.data.subarray(BLOCK, 2 * BLOCK), BLOCK);
    return recallReply(req.requestId, { fullyPopulated: true, manifest: s.manifest });
  };
  const fd = s.event();
  const a = await answer(r, fd, { offset: BLOCK + 10, count: 100 });
  assert.deepEqual(a, { fd, verdict: "allow", errno: 0 });
  const { req } = r.recall.recalls[0];
  assert.equal(req.mode, RecallMode.RANGE);
  assert.deepEqual(
    req.ranges?.map((x) => [x.offset, x.length]),
    [[BigInt(BLOCK + 10), 100n]],
  );
  assert.equal(req.wantManifest, true, "several blocks: the listener needs the manifest");
  assert.deepEqual(
    r.xattr.writes.map((w) => w.state.state),
    ["partial"],
  );
  assert.deepEqual(r.source.ignored, [], "holes remain: still a stub, never ignore-marked");
});

test("a reply for another request id is denied (protocol-error) and changes nothing", async (t) => {
  const r = rig(t);
  const s = stubFile(r, "other-id", 5000);
  r.recall.onRecall = (req) => {
    put(s.path, s.data);
    return recallReply((req.requestId ?? 0n) + 1n, { fullyPopulated: true });
  };
  const fd = s.event();
  const a = await answer(r, fd);
  assert.deepEqual(a, { fd, verdict: "deny", errno: EIO });
  assert.equal(reasonCount(r.d, "protocol-error"), 1);
  assert.equal(r.recall.recalls.length, 1, "not retried");
  assert.equal(r.xattr.writes.length, 0);
  assert.deepEqual(r.source.ignored, []);
});

test("ALLOW over bytes that are not the file's is denied (checksum-mismatch): the blocks are punched back to holes, retried once", async (t) => {
  const r = rig(t);
  const s = stubFile(r, "wrong-bytes", 70_000);
  r.recall.onRecall = (req) => {
    put(s.path, randomBytes(s.data.length));
    return recallReply(req.requestId, { fullyPopulated: true });
  };
  const fd = s.event();
  const a = await answer(r, fd);
  assert.deepEqual(a, { fd, verdict: "deny", errno: FAILURE_POLICY["checksum-mismatch"].errno });
  assert.equal(a.errno, EIO);
  assert.equal(reasonCount(r.d, "checksum-mismatch"), 1);
  assert.equal(r.recall.recalls.length, 2, "one more recall after the punch");
  assert.ok(allHoles(s.path), "the refused bytes are punched away");
  assert.equal(r.xattr.writes.length, 0, "the stub state is untouched");
  assert.deepEqual(r.source.ignored, []);
});

test("a manifest whose bytes are not the stub state's is refused (checksum-mismatch)", async (t) => {
  const r = rig(t);
  const s = stubFile(r, "bad-manifest", 2 * MIB + 1);
  r.recall.onRecall = (req) => {
    put(s.path, s.data);
    return recallReply(req.requestId, {
      fullyPopulated: true,
      manifest: Buffer.concat([s.manifest, Buffer.from(" ")]),
    });
  };
  const fd = s.event();
  const a = await answer(r, fd);
  assert.equal(a.verdict, "deny");
  assert.equal(reasonCount(r.d, "checksum-mismatch"), 1);
  assert.equal(r.xattr.writes.length, 0);
  assert.deepEqual(r.source.ignored, []);
});

test("a restarting recall service (recall-unavailable) is retried inside the deadline", async (t) => {
  const r = rig(t);
  const s = stubFile(r, "retry", 4096);
  r.recall.onRecall = (req, call) => {
    if (call === 0) return { ok: false, reason: "recall-unavailable", message: "connection refused" };
    put(s.path, s.data);
    return recallReply(req.requestId, { fullyPopulated: true });
  };
  const fd = s.event();
  const a = await answer(r, fd);
  assert.deepEqual(a, { fd, verdict: "allow", errno: 0 });
  assert.equal(r.recall.recalls.length, 2);
  const [first, second] = r.recall.recalls;
  assert.notEqual(first.req.requestId, second.req.requestId, "each attempt has an id of its own");
  assert.equal(r.channel.sent[1].requestId, second.req.requestId);
  assert.ok(second.timeoutMs <= first.timeoutMs, "the retry has what is left of the one deadline");
});

test("a recall service that stays away: denied (recall-unavailable) once the deadline is near, not before", async (t) => {
  const r = rig(t, { recallTimeoutMs: 1500 });
  const s = stubFile(r, "gone", 4096);
  r.channel.failing = true;
  const started = Date.now();
  const fd = s.event();
  const a = await answer(r, fd);
  const took = Date.now() - started;
  assert.deepEqual(a, { fd, verdict: "deny", errno: EIO });
  assert.equal(reasonCount(r.d, "recall-unavailable"), 1);
  assert.equal(r.recall.recalls.length, 0, "no RPC without the fd");
  // Outcome plus a bound generous enough for a loaded machine (the deadline is 1.5 s).
  assert.ok(took < 30_000, `answered after ${took} ms`);
});

test("over the recall budget a new recall gets EAGAIN at once; a second reader of a file being recalled waits for it", async (t) => {
  const r = rig(t, { maxRecalls: 1 });
  const a = stubFile(r, "a", 4096);
  const b = stubFile(r, "b", 4096);
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  t.after(() => release());
  r.recall.onRecall = async (req) => {
    await gate;
    put(a.path, a.data);
    return recallReply(req.requestId, { fullyPopulated: true });
  };
  const fdA = a.event();
  const fdA2 = a.event();
  r.d.onEvent({ mask: 0, fd: fdA, pid: 0, range: null });
  r.d.onEvent({ mask: 0, fd: fdA2, pid: 0, range: null });
  const fdB = b.event();
  const answerB = await answer(r, fdB);
  assert.deepEqual(answerB, { fd: fdB, verdict: "deny", errno: EAGAIN });
  assert.equal(reasonCount(r.d, "overloaded"), 1);
  assert.equal(r.d.recalling, 1);
  release();
  assert.equal((await answered(r, fdA)).verdict, "allow");
  assert.equal((await answered(r, fdA2)).verdict, "allow");
  assert.equal(r.recall.recalls.length, 1, "the second reader found the file recalled");
  await tick();
  assert.equal(r.d.recalling, 0);
  assert.equal(r.d.held, 0);
});

test("more held events than maxHeld: the next stub access gets EAGAIN at once", async (t) => {
  const r = rig(t, { maxHeld: 0 });
  const s = stubFile(r, "held", 4096);
  const fd = s.event();
  const a = await answer(r, fd);
  assert.deepEqual(a, { fd, verdict: "deny", errno: EAGAIN });
  assert.equal(reasonCount(r.d, "overloaded"), 1);
  assert.equal(r.recall.recalls.length, 0);
});

/** Who is behind each test pid (no /proc): 4242 is cat, 4343 dd, 4444 a backup agent's tar. */
const PEOPLE: Record<number, AccessorInfo> = {
  4242: { pid: 4242, uid: 1234, command: "cat", cgroup: "/user.slice/user-1234.slice/session-1.scope" },
  4343: { pid: 4343, uid: 1234, command: "dd", cgroup: "/user.slice/user-1234.slice/session-1.scope" },
  4444: { pid: 4444, uid: 0, command: "tar", cgroup: "/system.slice/backup.service" },
};
const RULES = parseRecallRules(
  JSON.stringify([
    { name: "no-cat", match: { command: "cat" }, action: "deny", errno: "EBUSY" },
    { name: "backup", match: { cgroup: "/system.slice/backup.service" }, action: "low" },
  ]),
);

function ruledRig(t: { after: (fn: () => void) => void }, lowWaitMs = 10_000): Rig {
  return rig(t, { rules: RULES, lowWaitMs, describe: (pid) => PEOPLE[pid] });
}

function event(r: Rig, fd: number, pid: number): Promise<Answer> {
  r.d.onEvent({ mask: 0, fd, pid, range: null });
  return answered(r, fd);
}

test("a rule denying a command: its access fails at once with the rule's errno, no fd is sent, nothing is recalled; another reader of the stub gets it recalled", async (t) => {
  const r = ruledRig(t);
  const s = stubFile(r, "denied", 100_000);
  r.recall.onRecall = (req) => {
    put(s.path, s.data);
    return recallReply(req.requestId, { fullyPopulated: true });
  };
  // Both open at once: an fd number answered and closed would come back for the second.
  const fd = s.event();
  const other = s.event();
  assert.deepEqual(await event(r, fd, 4242), { fd, verdict: "deny", errno: 16 });
  assert.equal(r.recall.recalls.length, 0);
  assert.equal(r.channel.sent.length, 0);
  assert.equal(reasonCount(r.d, "denied-by-rule"), 1);
  assert.deepEqual(await event(r, other, 4343), { fd: other, verdict: "allow", errno: 0 });
  assert.equal(r.recall.recalls.length, 1);
  assert.equal(r.recall.recalls[0].req.accessor?.command, "dd");
  assert.equal(r.recall.recalls[0].req.accessor?.rule, "default", "the audit record names the rule");
  assert.deepEqual(r.d.ruleDecisions(), [
    { rule: "no-cat", action: "deny", count: 1 },
    { rule: "backup", action: "low", count: 0 },
    { rule: "default", action: "allow", count: 1 },
  ]);
});

test("a low caller's new recall waits until no other recall runs; past its wait it gets EAGAIN", async (t) => {
  const r = ruledRig(t, 300);
  const a = stubFile(r, "a", 4096);
  const b = stubFile(r, "b", 4096);
  const c = stubFile(r, "c", 4096);
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  t.after(() => release());
  r.recall.onRecall = async (req) => {
    const file = [a, b, c].find((f) => f.stub.key === req.object?.key)!;
    if (file === a) await gate;
    put(file.path, file.data);
    return recallReply(req.requestId, { fullyPopulated: true });
  };
  const [fdA, fdB, fdC] = [a.event(), b.event(), c.event()];
  r.d.onEvent({ mask: 0, fd: fdA, pid: 4343, range: null });
  // Held behind a's recall until its wait (300 ms) runs out: EAGAIN, nothing recalled.
  assert.deepEqual(await event(r, fdB, 4444), { fd: fdB, verdict: "deny", errno: EAGAIN });
  r.d.onEvent({ mask: 0, fd: fdC, pid: 4444, range: null });
  await tick();
  assert.equal(r.recall.recalls.length, 1, "the low recall waits for its turn");
  release();
  assert.equal((await answered(r, fdA)).verdict, "allow");
  assert.equal((await answered(r, fdC)).verdict, "allow");
  assert.equal(r.recall.recalls.length, 2);
  assert.equal(r.recall.recalls[1].req.accessor?.rule, "backup");
  assert.equal(r.d.ruleDecisions().find((x) => x.rule === "backup")?.count, 2);
});
