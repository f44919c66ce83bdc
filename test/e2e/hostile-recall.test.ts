// A compromised recall service (a real process, as the recall uid, in front of a real one:
// test/helpers/hostile-recall.ts) that stops accepting, answers for ids never asked, claims a
// file is fully populated, falsifies archive integrity, says "equal" without looking, and
// writes wrong bytes before it allows. What it may do is deny recalls. What it must never do,
// and what every case here asserts: make a reader (a real process as another unprivileged
// uid) see wrong bytes, block or crash the root listener, leave trusted.fanrecall in a state
// that does not decode, or get the blocks of a file freed when its archive cannot be vouched
// for. After each hostile phase an honest one shows the listener still serves and the file
// still reads back exactly. (The mesh flood case is in mesh-admin.test.ts.)
import { after, before, describe } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmodSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runChild } from "../helpers/child.js";
import type { ChildResult } from "../helpers/child.js";
import { BOGUS_ARCHIVE_VARIANTS } from "../helpers/hostile-recall.js";
import type { HostileMode } from "../helpers/hostile-recall.js";
import { assertAlive, startHostileStack } from "../helpers/hostile-stack.js";
import type { HostileStack } from "../helpers/hostile-stack.js";
import { makeExt4 } from "../helpers/loop-fs.js";
import type { Ext4 } from "../helpers/loop-fs.js";
import { startS3rver } from "../helpers/object-server.js";
import type { ObjectServer } from "../helpers/object-server.js";
import { isRoot, rootTest } from "../helpers/root.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const DEADLINE_MS = 4000;
/** How late past the recall deadline a denied reader may still be answered (a 2-core machine, shared). */
const SLACK_MS = 3000;
const WRONG = 0xaa;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface TestFile {
  readonly path: string;
  readonly data: Buffer;
}

/** Where `got` first differs from `want`, and how many of its bytes are the hostile 0xAA. */
function describeWrong(got: Buffer, want: Buffer): string {
  let first = -1;
  for (let i = 0; i < Math.min(got.length, want.length); i++)
    if (got[i] !== want[i]) {
      first = i;
      break;
    }
  const junk = got.reduce((n, b) => n + (b === WRONG ? 1 : 0), 0);
  const zeros = got.reduce((n, b) => n + (b === 0 ? 1 : 0), 0);
  return `${got.length} bytes (want ${want.length}), first difference at ${first}, ${junk} x 0xAA, ${zeros} x 0x00`;
}

/** The reader got exactly `want`, or an error (EIO/EAGAIN): never anything else. */
function rightOrError(r: ChildResult, want: Buffer, what: string): "right" | "error" {
  if (r.code === 0) {
    assert.ok(r.stdout.equals(want), `${what}: a reader got WRONG bytes: ${describeWrong(r.stdout, want)}`);
    return "right";
  }
  assert.match(r.stderr, /Input\/output error|Resource temporarily unavailable/, `${what}: ${r.stderr}`);
  return "error";
}

/** The reader got an error: where the hostile service wrote nothing right, bytes can only be wrong. */
function mustFail(r: ChildResult, want: Buffer, what: string): void {
  assert.equal(rightOrError(r, want, what), "error", `${what}: the reader was let through`);
}

describe("a hostile recall service", () => {
  let fs: Ext4;
  let s3: ObjectServer;
  let stack: HostileStack;

  function writeFile(name: string, size: number): TestFile {
    const path = join(fs.dir, name);
    const data = randomBytes(size);
    writeFileSync(path, data);
    chmodSync(path, 0o644);
    return { path, data };
  }

  /**
   * Stubs for every test, released through the honest service in one command (each admin
   * command is a process start: seconds on this machine), so no test waits for its own.
   */
  const STUBS: Record<string, number> = {
    honest: 2 * MiB + 3,
    "stop-1": 2 * MiB + 1,
    "stop-2": 2 * MiB + 2,
    "stop-3": 2 * MiB + 3,
    "stop-4": 2 * MiB + 4,
    "unknown-a": 2 * MiB + 5,
    "unknown-b": 3 * MiB + 7,
    ffp: 12 * MiB,
    unwritten: 6 * MiB + 9,
    "wrong-small": 3 * MiB + 123,
    "wrong-large": 12 * MiB,
    sigterm: 2 * MiB,
    "ahead-wrong": 40 * MiB,
    "ahead-stall": 40 * MiB,
    "ahead-late": 40 * MiB,
  };
  const stubs = new Map<string, TestFile>();
  let canaries = 0;

  function stub(name: string): TestFile {
    const f = stubs.get(name);
    assert.ok(f, `no stub ${name}`);
    assert.equal(stack.stubState(f.path)?.state, "released", `${name} is not a stub before the test`);
    return f;
  }

  async function releaseAll(files: readonly TestFile[]): Promise<void> {
    await stack.setMode("honest");
    const r = await stack.cli(["release", ...files.map((f) => f.path)]);
    assert.equal(r.code, 0, `release: ${r.stderr}\n${stack.hostileOutput().slice(-2000)}`);
  }

  /** trusted.fanrecall decodes, and its state is one of `states`. */
  function stateIn(f: TestFile, states: readonly string[], what: string): void {
    const s = stack.stubState(f.path);
    assert.ok(
      states.includes(s?.state ?? "resident"),
      `${what}: state ${s?.state ?? "resident"}, not ${states.join("/")}`,
    );
  }

  /** Every byte of the file is in its blocks (stat only: nothing that could raise an event). */
  function assertAllocated(f: TestFile, what: string): void {
    const st = statSync(f.path);
    assert.equal(st.size, f.data.length, what);
    assert.ok(st.blocks * 512 >= st.size, `${what}: ${st.blocks * 512} of ${st.size} bytes allocated`);
  }

  /** Honest again: the listener serves, the file reads back exactly, its state decodes. */
  async function honestAfter(what: string, ...files: TestFile[]): Promise<void> {
    await stack.setMode("honest");
    assertAlive(stack, what);
    for (const f of files) {
      const r = await stack.read(f.path);
      assert.equal(r.code, 0, `${what}: an honest read of ${f.path} failed: ${r.stderr}`);
      assert.ok(
        r.stdout.equals(f.data),
        `${what}: WRONG bytes after the hostile phase: ${describeWrong(r.stdout, f.data)}`,
      );
      stack.stubState(f.path);
    }
    // A stub the hostile phase never touched, recalled now.
    const canary = stubs.get(`canary-${canaries++}`);
    assert.ok(canary, "out of canaries");
    const r = await stack.read(canary.path);
    assert.equal(r.code, 0, `${what}: the listener stopped serving: ${r.stderr}`);
    assert.ok(r.stdout.equals(canary.data), `${what}: a canary stub read back wrong`);
  }

  before(
    async () => {
      if (!isRoot()) return;
      fs = await makeExt4(512);
      s3 = await startS3rver();
      stack = await startHostileStack({
        watch: fs.dir,
        server: s3,
        bucket: "fanrecall-hostile",
        recallTimeoutMs: DEADLINE_MS,
      });
      for (const [name, size] of Object.entries(STUBS)) stubs.set(name, writeFile(`${name}.bin`, size));
      for (let i = 0; i < 12; i++) stubs.set(`canary-${i}`, writeFile(`canary-${i}.bin`, MiB + i));
      await releaseAll([...stubs.values()]);
    },
    { timeout: 180_000 },
  );

  after(
    async () => {
      if (!isRoot()) return;
      await stack?.stop();
      await s3?.stop();
      await fs?.cleanup();
    },
    { timeout: 60_000 },
  );

  rootTest("honest: a stub is recalled through the hostile service's sockets", async () => {
    const f = stub("honest");
    const r = await stack.read(f.path);
    assert.equal(rightOrError(r, f.data, "honest"), "right");
    assert.ok(
      stack.acts("relayed").some((a) => a.op === "recall"),
      "the recall did not go through the hostile service",
    );
  });

  rootTest(
    "stop-accepting: stub readers get an error by the deadline, resident readers are unaffected",
    async () => {
      const stopStubs = [1, 2, 3, 4].map((i) => stub(`stop-${i}`));
      await stack.setMode("stop-accepting");
      const readers = stopStubs.map((f) => stack.read(f.path));
      await sleep(500);
      // Fresh files: a file read once gets an ignore mark, and its later reads never reach the listener.
      for (let i = 0; i < 5; i++) {
        const plain = writeFile(`stop-plain-${i}.bin`, 256 * KiB);
        const r = await stack.read(plain.path);
        assert.ok(r.stdout.equals(plain.data), `a resident file while stubs are held: ${r.stderr}`);
        assert.ok(r.ms < 1500, `a resident file took ${r.ms} ms while stubs were held`);
      }
      for (const [i, p] of readers.entries()) {
        const r = await p;
        mustFail(r, stopStubs[i].data, `stub ${i} with a silent recall service`);
        assert.ok(r.ms < DEADLINE_MS + SLACK_MS, `stub ${i}: answered after ${r.ms} ms`);
        stateIn(stopStubs[i], ["released", "partial"], "stop-accepting");
      }
      assert.ok(stack.acts("silent").length > 0, "the hostile service never went silent");
      await honestAfter("stop-accepting", ...stopStubs);
    },
    { timeout: 60_000 },
  );

  rootTest(
    "read-ahead windows filled with wrong bytes: the reader still gets exactly the file, from its own recalls",
    async () => {
      const f = stub("ahead-wrong");
      await stack.setMode("wrong-bytes-ahead");
      const r = await stack.read(f.path);
      assert.equal(rightOrError(r, f.data, "wrong bytes in read-ahead windows"), "right");
      assert.ok(stack.acts("wrong-bytes").length > 0, "no read-ahead window was asked for (no stream started)");
      assert.match(stack.listenerOutput(), /read-ahead window failed/);
      stateIn(f, ["released", "partial", "archived"], "wrong-bytes-ahead");
      await honestAfter("wrong-bytes-ahead", f);
    },
    { timeout: 60_000 },
  );

  rootTest(
    "read-ahead windows never answered: the reader gets the file or an error by the deadline, never waits on",
    async () => {
      const f = stub("ahead-stall");
      await stack.setMode("stall-ahead");
      const r = await stack.read(f.path);
      // Either the wait for the window ends at the reader's deadline (EIO), or the windows fail
      // first and the reader's own recall (relayed honestly) brings the bytes.
      rightOrError(r, f.data, "read-ahead windows never answered");
      assert.ok(r.ms < DEADLINE_MS + SLACK_MS, `answered after ${r.ms} ms`);
      assert.ok(stack.acts("silent").length > 0, "no read-ahead window was asked for (no stream started)");
      stateIn(f, ["released", "partial", "archived"], "stall-ahead");
      await honestAfter("stall-ahead", f);
    },
    { timeout: 60_000 },
  );

  rootTest(
    "a truncate while read-ahead windows are written late waits for them: nothing lands past the new size",
    async () => {
      const f = stub("ahead-late");
      await stack.setMode("late-ahead");
      const reader = stack.read(f.path);
      const deadline = Date.now() + 10_000;
      while (!/read-ahead stream started/.test(stack.listenerOutput())) {
        assert.ok(Date.now() < deadline, "no read-ahead stream started");
        await sleep(20);
      }
      await sleep(200);
      const t = await runChild(["truncate", "-s", String(MiB), f.path], { timeoutMs: 30_000 });
      assert.equal(t.code, 0, t.stderr);
      // Truncated under it, the reader gets a prefix of the file (or an error), never other bytes.
      const got = await reader;
      rightOrError(got, f.data.subarray(0, got.stdout.length), "a reader while the windows were late");
      assert.ok(stack.acts("late-window").length > 0, "no late window was written");
      await sleep(2000);
      assert.equal(statSync(f.path).size, MiB, "a late window wrote past the truncated size");
      await stack.setMode("honest");
      const r = await stack.read(f.path);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.equals(f.data.subarray(0, MiB)), `after the truncate: ${describeWrong(r.stdout, f.data)}`);
    },
    { timeout: 60_000 },
  );

  rootTest(
    "unknown-ids: an ALLOW for an id never asked (and FD_OFFERs pushed back) is no verdict",
    async () => {
      const f = stub("unknown-a");
      await stack.setMode("unknown-ids");
      const pushed = stack.acts().filter((a) => a.event === "mode" && a.mode === "unknown-ids");
      assert.ok(Number(pushed.at(-1)?.pushed) > 0, "no unsolicited message reached the listener's fd channel");
      mustFail(await stack.read(f.path), f.data, "ALLOW for an unasked id, nothing written");
      assert.ok(stack.acts("reply-unknown-id").length > 0);
      stateIn(f, ["released", "partial"], "unknown-ids");
      await honestAfter("unknown-ids", f);
    },
    { timeout: 60_000 },
  );

  rootTest(
    "unknown-ids: a real recall answered under another id is a failure",
    async () => {
      const f = stub("unknown-b");
      await stack.setMode("unknown-ids-after-recall");
      mustFail(await stack.read(f.path), f.data, "a real recall answered under another id");
      assert.ok(stack.acts("reply-unknown-id-after-recall").length > 0);
      stateIn(f, ["released", "partial"], "unknown-ids-after-recall");
      await honestAfter("unknown-ids-after-recall", f);
    },
    { timeout: 60_000 },
  );

  rootTest(
    "false fullyPopulated after a ranged recall: the file stays a stub and its other ranges still recall",
    async () => {
      const f = stub("ffp");
      await stack.setMode("false-fully-populated");
      const tail = { offset: 8 * MiB, count: 64 * KiB };
      const want = f.data.subarray(tail.offset, tail.offset + tail.count);
      rightOrError(await stack.read(f.path, tail), want, "a relayed recall claiming the whole file");
      assert.ok(stack.acts("false-fully-populated").length > 0);
      stateIn(f, ["released", "partial"], "false-fully-populated");
      // An ignore mark (or an "archived" state) would now serve the rest of the file as zeros.
      await honestAfter("false-fully-populated", f);
    },
    { timeout: 60_000 },
  );

  rootTest(
    "false fullyPopulated with nothing written: an error, never zeros, and the file stays a stub",
    async () => {
      const f = stub("unwritten");
      await stack.setMode("allow-unwritten");
      const head = { offset: 4 * MiB, count: 64 * KiB };
      const want = f.data.subarray(head.offset, head.offset + head.count);
      mustFail(await stack.read(f.path, head), want, "ALLOW fullyPopulated with nothing written");
      assert.ok(stack.acts("allow-unwritten").length > 0);
      stateIn(f, ["released", "partial"], "allow-unwritten");
      await honestAfter("allow-unwritten", f);
    },
    { timeout: 60_000 },
  );

  rootTest(
    "wrong bytes, one chunk: the reader gets an error, never 0xAA, and the stub recalls afterwards",
    async () => {
      const f = stub("wrong-small");
      await stack.setMode("wrong-bytes");
      const r = await stack.read(f.path);
      mustFail(r, f.data, "wrong bytes written before ALLOW (whole file, fullyPopulated)");
      assert.ok(stack.acts("wrong-bytes").some((a) => a.whole === true));
      stateIn(f, ["released", "partial"], "wrong-bytes small");
      await honestAfter("wrong-bytes small", f);
    },
    { timeout: 60_000 },
  );

  rootTest(
    "wrong bytes, many chunks read at an offset: an error, never 0xAA, and the stub recalls afterwards",
    async () => {
      const f = stub("wrong-large");
      await stack.setMode("wrong-bytes");
      const range = { offset: 5 * MiB + 8 * KiB, count: 256 * KiB };
      const want = f.data.subarray(range.offset, range.offset + range.count);
      mustFail(await stack.read(f.path, range), want, "wrong bytes written over the asked chunks and beyond");
      const beyond = { offset: 8 * MiB + 512 * KiB, count: 64 * KiB };
      const r2 = await stack.read(f.path, beyond);
      mustFail(r2, f.data.subarray(beyond.offset, beyond.offset + beyond.count), "the range the junk spilled into");
      assert.ok(stack.acts("wrong-bytes").some((a) => a.whole === false));
      stateIn(f, ["released", "partial"], "wrong-bytes large");
      await stack.setMode("honest");
      const again = await stack.read(f.path, range);
      assert.equal(again.code, 0, `honest read of the range: ${again.stderr}`);
      assert.ok(again.stdout.equals(want), `honest read of the range: ${describeWrong(again.stdout, want)}`);
      await honestAfter("wrong-bytes large", f);
    },
    { timeout: 60_000 },
  );

  /**
   * Releases `files` in one command while the hostile service falsifies their archives, then
   * checks each file: its state decodes; a file not released still has every block; released
   * or not, it reads back exactly through an honest service. Returns the problems found.
   */
  async function releaseUnder(mode: HostileMode, arg: string, files: Map<string, TestFile>, t: TestContext) {
    await stack.setMode(mode, arg);
    const acted = stack.acts("bogus-archive").length;
    const rel = await stack.cli(["release", ...[...files.values()].map((f) => f.path)]);
    assert.equal(stack.acts("bogus-archive").length - acted, files.size, "not every archive was falsified");
    await stack.setMode("honest");
    const problems: string[] = [];
    for (const [name, f] of files) {
      const said = `${rel.stdout.toString()}${rel.stderr}`.split("\n").find((l) => l.includes(f.path)) ?? "";
      t.diagnostic(`${name}: ${said.replace(`${f.path}: `, "")}`);
      try {
        const state = stack.stubState(f.path)?.state ?? "resident"; // throws when it does not decode
        if (state !== "released" && state !== "partial") assertAllocated(f, `${name}: not released but blocks freed`);
        const r = await stack.read(f.path);
        assert.equal(r.code, 0, `${name}: ${state} and unreadable: ${r.stderr.trim()} (release said: ${said})`);
        assert.ok(r.stdout.equals(f.data), `${name}: ${describeWrong(r.stdout, f.data)}`);
      } catch (err: unknown) {
        problems.push(err instanceof Error ? err.message : String(err));
      }
    }
    return { rel, problems };
  }

  rootTest(
    "bogus archive integrity: archive fails cleanly or the file stays readable; no release loses data",
    async (t) => {
      const files = new Map(BOGUS_ARCHIVE_VARIANTS.map((v) => [v, writeFile(`bogus-${v}.bin`, 4 * MiB + 11)]));
      const arg = [...files].map(([v, f]) => `${statSync(f.path).ino}=${v}`).join(",");
      const { problems } = await releaseUnder("bogus-archive", arg, files, t);
      assert.deepEqual(problems, [], problems.join("\n"));
      await honestAfter("bogus archive");
    },
    { timeout: 60_000 },
  );

  rootTest(
    "Verify always 'equal' over an archive with a wrong contentSha256: release refuses, the data stays",
    async (t) => {
      const files = new Map(
        [3 * MiB + 1, 9 * MiB + 1].map((n) => [`${n} bytes`, writeFile(`verify-equal-${n}.bin`, n)]),
      );
      const { rel, problems } = await releaseUnder("verify-equal", "", files, t);
      for (const [name, f] of files) {
        const state = stack.stubState(f.path)?.state ?? "resident";
        if (state === "released" || state === "partial")
          problems.push(`${name}: released although its archived digest is not its own`);
      }
      assert.notEqual(rel.code, 0, "release said it freed files whose archive it cannot vouch for");
      assert.deepEqual(problems, [], problems.join("\n"));
      await honestAfter("verify-equal");
    },
    { timeout: 60_000 },
  );

  // Last: it ends the listener.
  rootTest(
    "stop-accepting, then SIGTERM: the listener ends promptly and answers the held reader",
    async () => {
      const f = stub("sigterm");
      await stack.setMode("stop-accepting");
      const reader = stack.read(f.path);
      await sleep(500);
      const t0 = Date.now();
      stack.listener.child.kill("SIGTERM");
      const exit = await stack.listener.result;
      const took = Date.now() - t0;
      assert.equal(exit.code, 0, `listener exit ${exit.code} ${exit.signal}`);
      assert.ok(took < DEADLINE_MS + SLACK_MS, `the listener took ${took} ms to stop`);
      mustFail(await reader, f.data, "a reader held over SIGTERM");
      stateIn(f, ["released", "partial"], "SIGTERM");
    },
    { timeout: 60_000 },
  );
});
