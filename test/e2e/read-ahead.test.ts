// Read-ahead streams (listener/read-ahead.ts), end to end: a real fanrecall on a loop ext4, a
// real s3rver, real readers as another uid. A sequential reader gets exactly the file and the
// stream completes it; a reader that stops leaves the stream at most its reach ahead; a
// user's write and a user's truncate while a stream runs are never overwritten by archived
// bytes; a reader SIGKILLed mid-stream leaves a valid stub that reads back exactly; a reader
// through its own read-only bind mount in a user namespace gets exactly the file; the recall
// service or the listener SIGKILLed mid-stream never make a reader get a wrong byte.
import { after, before, describe } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { OTHER_UID, runAsUid, runChild, setprivAs, spawnChild } from "../helpers/child.js";
import type { Spawned } from "../helpers/child.js";
import { startFanrecall } from "../helpers/fanrecall-instance.js";
import type { FanrecallInstance } from "../helpers/fanrecall-instance.js";
import { makeExt4 } from "../helpers/loop-fs.js";
import type { Ext4 } from "../helpers/loop-fs.js";
import { startS3rver } from "../helpers/object-server.js";
import type { ObjectServer } from "../helpers/object-server.js";
import { isRoot, rootTest } from "../helpers/root.js";
import { fanrecallPids, signalPid, waitFor as waitForValue } from "../helpers/procs.js";

const MiB = 1024 * 1024;
/** The stream's reach past the furthest byte asked, plus its windows in flight (read-ahead.ts). */
const AHEAD_MAX = 64 * MiB + 3 * 8 * MiB;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** Reads a file in 1 MiB reads with a pause after each, to stdout (python3, as OTHER_UID). */
const SLOW_READER = `
import sys, time
with open(sys.argv[1], "rb") as f:
    while True:
        b = f.read(1 << 20)
        if not b: break
        sys.stdout.buffer.write(b)
        time.sleep(float(sys.argv[2]))
`;

interface TestFile {
  readonly path: string;
  readonly data: Buffer;
}

describe("read-ahead streams", () => {
  let fs: Ext4;
  let s3: ObjectServer;
  let fr: FanrecallInstance;
  const files = new Map<string, TestFile>();
  const SIZES: Record<string, number> = {
    sequential: 48 * MiB + 5,
    stops: 160 * MiB,
    written: 96 * MiB,
    truncated: 96 * MiB,
    killed: 96 * MiB,
    userns: 48 * MiB + 3,
    "service-killed": 128 * MiB,
    "listener-killed": 128 * MiB,
  };

  function file(name: string): TestFile {
    const f = files.get(name);
    assert.ok(f, `no file ${name}`);
    return f;
  }

  /** The listener's stream lines for the inode of `f`. */
  function streamLines(f: TestFile, msg: string): Array<{ why?: string; until?: number }> {
    const ino = statSync(f.path).ino;
    return fr
      .output()
      .split("\n")
      .filter((l) => l.includes(`"${msg}"`))
      .map((l) => JSON.parse(l) as { ino: number; why?: string; until?: number })
      .filter((j) => j.ino === ino);
  }

  async function waitFor(what: string, ok: () => boolean, ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!ok()) {
      assert.ok(Date.now() < deadline, `${what}: not within ${ms} ms\n${fr.output().slice(-3000)}`);
      await sleep(50);
    }
  }

  function slowReader(f: TestFile, pause: number): Spawned {
    return spawnChild([...setprivAs(OTHER_UID), "/usr/bin/python3", "-c", SLOW_READER, f.path, String(pause)], {
      timeoutMs: 120_000,
    });
  }

  async function populated(f: TestFile): Promise<{ state: string; populatedBytes: number }> {
    const [s] = await fr.status([f.path]);
    return s;
  }

  before(
    async () => {
      if (!isRoot()) return;
      fs = await makeExt4(1024);
      s3 = await startS3rver();
      fr = await startFanrecall({ watch: [fs.dir], server: s3, bucket: "fanrecall-read-ahead" });
      for (const [name, size] of Object.entries(SIZES)) {
        const path = join(fs.dir, `${name}.bin`);
        const data = randomBytes(size);
        writeFileSync(path, data);
        chmodSync(path, 0o644);
        files.set(name, { path, data });
      }
      const paths = [...files.values()].map((f) => f.path);
      for (const op of ["archive", "release"]) {
        const r = await fr.cli([op, ...paths], 600_000);
        assert.equal(r.code, 0, `${op}: ${r.stderr}`);
      }
    },
    { timeout: 900_000 },
  );

  after(
    async () => {
      if (!isRoot()) return;
      await fr?.stop();
      await s3?.stop();
      await fs?.cleanup();
    },
    { timeout: 60_000 },
  );

  rootTest(
    "a sequential reader gets exactly the file; the stream completes it and it is resident after",
    async () => {
      const f = file("sequential");
      const r = await runAsUid(OTHER_UID, ["dd", `if=${f.path}`, "bs=1M", "status=none"], { timeoutMs: 120_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha(r.stdout), sha(f.data), "the reader got wrong bytes");
      assert.equal(streamLines(f, "read-ahead stream started").length, 1, "no read-ahead stream started");
      await waitFor("the stream's end", () => streamLines(f, "read-ahead stream ended").length > 0);
      assert.equal(streamLines(f, "read-ahead stream ended")[0].why, "complete");
      assert.equal((await populated(f)).state, "archived");
    },
    { timeout: 180_000 },
  );

  rootTest(
    "a reader that stops: the stream goes at most its reach past it, ends idle, and the rest still recalls",
    async () => {
      const f = file("stops");
      const r = await runAsUid(OTHER_UID, ["dd", `if=${f.path}`, "bs=1M", "count=3", "status=none"], {
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.equals(f.data.subarray(0, 3 * MiB)), "the first 3 MiB read wrong");
      await waitFor("the stream's idle end", () => streamLines(f, "read-ahead stream ended").length > 0, 30_000);
      assert.equal(streamLines(f, "read-ahead stream ended")[0].why, "idle");
      const s = await populated(f);
      assert.equal(s.state, "partial");
      assert.ok(s.populatedBytes >= 3 * MiB, `${s.populatedBytes} bytes present`);
      assert.ok(s.populatedBytes <= 3 * MiB + AHEAD_MAX, `the stream ran ${s.populatedBytes} bytes ahead`);
      const all = await runAsUid(OTHER_UID, ["cat", f.path], { timeoutMs: 120_000 });
      assert.equal(all.code, 0, all.stderr);
      assert.equal(sha(all.stdout), sha(f.data), "the rest read wrong");
    },
    { timeout: 180_000 },
  );

  rootTest(
    "a user's write while a stream runs is kept: archived bytes never land over it",
    async () => {
      const f = file("written");
      const reader = slowReader(f, 0.03);
      await waitFor("the stream's start", () => streamLines(f, "read-ahead stream started").length > 0);
      const at = 80 * MiB;
      const mine = Buffer.alloc(MiB, 0x55);
      writeFileSync("/tmp/fanrecall-read-ahead-mine", mine);
      const w = await runChild(
        ["dd", "if=/tmp/fanrecall-read-ahead-mine", `of=${f.path}`, "bs=1M", `seek=${at / MiB}`, "conv=notrunc"],
        { timeoutMs: 60_000 },
      );
      assert.equal(w.code, 0, w.stderr);
      const r = await reader.result;
      assert.equal(r.code, 0, r.stderr);
      const want = Buffer.concat([f.data.subarray(0, at), mine, f.data.subarray(at + MiB)]);
      // The reader may have read the written MiB before or after the write; every other byte is the file's.
      const got = Buffer.concat([r.stdout.subarray(0, at), mine, r.stdout.subarray(at + MiB)]);
      assert.equal(sha(got), sha(want), "the reader got wrong bytes");
      await sleep(1500);
      assert.equal(sha(readFileSync(f.path)), sha(want), "the user's write was overwritten or the file is wrong");
    },
    { timeout: 180_000 },
  );

  rootTest(
    "a user's truncate while a stream runs stays: the file keeps its new size and nothing is written past it",
    async () => {
      const f = file("truncated");
      const reader = slowReader(f, 0.03);
      await waitFor("the stream's start", () => streamLines(f, "read-ahead stream started").length > 0);
      const t = await runChild(["truncate", "-s", `${10 * MiB}`, f.path], { timeoutMs: 60_000 });
      assert.equal(t.code, 0, t.stderr);
      await reader.result;
      await sleep(2000);
      assert.equal(statSync(f.path).size, 10 * MiB, "the file grew back after the user's truncate");
      assert.equal(sha(readFileSync(f.path)), sha(f.data.subarray(0, 10 * MiB)), "the truncated file is wrong");
    },
    { timeout: 180_000 },
  );

  rootTest(
    "a reader SIGKILLed mid-stream: the stream ends, the stub stays valid and reads back exactly",
    async () => {
      const f = file("killed");
      const reader = slowReader(f, 0.05);
      await waitFor("the stream's start", () => streamLines(f, "read-ahead stream started").length > 0);
      await sleep(300);
      reader.kill();
      await reader.result;
      await waitFor("the stream's end", () => streamLines(f, "read-ahead stream ended").length > 0, 30_000);
      assert.ok(["partial", "archived"].includes((await populated(f)).state));
      const all = await runAsUid(OTHER_UID, ["cat", f.path], { timeoutMs: 120_000 });
      assert.equal(all.code, 0, all.stderr);
      assert.equal(sha(all.stdout), sha(f.data), "read back wrong after the reader died");
    },
    { timeout: 180_000 },
  );

  rootTest(
    "a sequential reader through its own read-only bind mount in a user namespace gets exactly the file",
    async () => {
      const f = file("userns");
      // The kernel gives no writable event fd for an access through a read-only mount: the
      // stream's windows are recalled through the listener's own view, as a reader's recall is.
      const r = await runAsUid(
        OTHER_UID,
        [
          "unshare",
          "-Urm",
          "sh",
          "-c",
          'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && dd if="$2" bs=1M status=none',
          "sh",
          fs.dir,
          f.path,
        ],
        { timeoutMs: 120_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha(r.stdout), sha(f.data), "the reader got wrong bytes");
      assert.equal(streamLines(f, "read-ahead stream started").length, 1, "no read-ahead stream started");
    },
    { timeout: 180_000 },
  );

  for (const victim of ["recall-service", "listener"] as const) {
    rootTest(
      `the ${victim} SIGKILLed mid-stream: the reader gets only the file's bytes; the file reads back exactly`,
      async (t: TestContext) => {
        const f = file(victim === "listener" ? "listener-killed" : "service-killed");
        const [pid] = fanrecallPids(fr.runDir, victim);
        assert.ok(pid, `no ${victim} running`);
        const reader = slowReader(f, 0.03);
        await waitFor("the stream's start", () => streamLines(f, "read-ahead stream started").length > 0);
        await sleep(100);
        assert.deepEqual(streamLines(f, "read-ahead stream ended"), [], "the stream ended before the kill");
        assert.ok(signalPid(pid, "SIGKILL"), `the ${victim} could not be killed`);
        const r = await reader.result;
        // Read to the end, or failed (EIO) part way: never a byte that is not the file's.
        assert.ok(f.data.subarray(0, r.stdout.length).equals(r.stdout), "the reader got wrong bytes");
        if (r.code === 0) assert.equal(r.stdout.length, f.data.length, "the reader got a short file");
        t.diagnostic(`reader: exit ${r.code}, ${r.stdout.length} of ${f.data.length} bytes, all the file's`);
        await waitForValue(`a new ${victim}`, () => fanrecallPids(fr.runDir, victim).find((p) => p !== pid), 60_000);
        // Once it is back (its first reads may still be refused), a whole read is exactly the file.
        let all = await runAsUid(OTHER_UID, ["cat", f.path], { timeoutMs: 120_000 });
        for (let i = 0; i < 20 && all.code !== 0; i++) {
          await sleep(500);
          all = await runAsUid(OTHER_UID, ["cat", f.path], { timeoutMs: 120_000 });
        }
        assert.equal(all.code, 0, all.stderr);
        assert.equal(sha(all.stdout), sha(f.data), `read back wrong after the ${victim} died`);
        assert.ok(["partial", "archived"].includes((await populated(f)).state));
      },
      { timeout: 240_000 },
    );
  }
});
