// Release under load, end to end (issue 10 item 4): "Under a stress test (>= 200 rounds of
// archive; 8 readers, 2 writers and a flood of reads of 2,000 other files on the same
// filesystem; release) no read ever returns bytes that are not the file's content at that
// moment, and no byte a writer wrote is lost." A real `fanrecall start` (embedded s3rver) on a
// loop ext4, 1 MiB chunks.
//
// The target file's bytes never contain 0x00, so a zero byte any reader sees is a hole (a
// punched block read without a recall). Two writers (uid 1234) own one region each and
// rewrite it again and again, each time open, read back the region (it must still be what
// they last wrote, whatever was released and recalled since), pwrite a new pattern, read it
// back, close. Eight readers (uid 1235) open, read the whole file and close in a loop: every
// read has the file's length, no zero byte, and outside the writers' regions exactly the
// original bytes. A flood (uid 1236) reads 2,000 small files of the same filesystem (100 of
// them stubs, released again now and then) and checks each one's content. Meanwhile the test
// runs 200 rounds of: read the target (recalling it if the last round released it; checked like
// the readers' reads), archive it, release it. An archive may find the file changed, a release
// may find it open ("busy") or changed; a failure because the file changed must say
// "stub-changed", and any other failure fails the test. At least 20 releases must free the
// file. At the end the file is released once more and read through a recall: each region
// holds its writer's last pattern, everything else the original bytes.
//
// The rounds talk to the listener's admin socket with the admin commands' own client (cli/
// admin-client.ts) from this process, with every 20th round through the real `fanrecall`
// CLI: a node start per command would make 400 commands take minutes.
import { after, before, describe } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AdminClient } from "../../cli/admin-client.js";
import type { AdminReply } from "../../cli/admin-client.js";
import { isRoot, rootTest } from "../helpers/root.js";
import { runChild, setprivAs, spawnChild } from "../helpers/child.js";
import type { ChildResult, Spawned } from "../helpers/child.js";
import { makeExt4 } from "../helpers/loop-fs.js";
import type { Ext4 } from "../helpers/loop-fs.js";
import { startFanrecall } from "../helpers/fanrecall-instance.js";
import type { FanrecallInstance } from "../helpers/fanrecall-instance.js";
import { sha256 } from "../helpers/reader-files.js";

const MiB = 1024 * 1024;
const ROUNDS = 200;
const MIN_RELEASED = 20;
/** Not page-aligned, several chunks. */
const SIZE = 3 * MiB + 12345;
/** [offset, length] of each writer's region: in different chunks, not page-aligned. */
const REGIONS: ReadonlyArray<readonly [number, number]> = [
  [300_001, 40_000],
  [2 * MiB + 100_003, 40_000],
];
const WRITER_UID = 1234;
const READER_UID = 1235;
const FLOOD_UID = 1236;
const READERS = 8;
const FLOOD_FILES = 2000;
/** Flood files per directory; the first directory's files are stubs. */
const FLOOD_DIR_FILES = 100;
/**
 * Writers write in bursts (a few ms apart) with quiet spells between them: an archive (read
 * the whole file, upload, read back) takes far longer than a few ms, so writes every few ms
 * without a pause would leave no moment in which a release could succeed.
 */
const WRITER_PACE = { pauseMin: 0.002, pauseMax: 0.008, burstMax: 10, quietMin: 0.1, quietMax: 2.0 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The worker processes (python3): reader, writer, flood, and holder (keeps the file open or
 * mapped). Each runs until the stop file exists and prints one JSON summary: ops, errors and
 * violations (the first 20 of each, and their counts).
 */
const WORKER = String.raw`
import json, mmap, os, random, sys, time
mode = sys.argv[1]
ctl = json.loads(sys.argv[2])
deadline = time.time() + ctl.get("maxSeconds", 600)
out = {"mode": mode, "ops": 0, "errors": [], "errorCount": 0, "violations": [], "violationCount": 0}

def running():
    return not os.path.exists(ctl["stop"]) and time.time() < deadline

def note(kind, **kw):
    out[kind[:-1] + "Count"] += 1
    if len(out[kind]) < 20:
        out[kind].append(kw)

def first_diff(a, b, base=0):
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return base + i
    return base + n

def pattern(w, seq, length):
    head = ("w%ds%010d|" % (w, seq)).encode()
    return head + bytes([seq % 251 + 1]) * (length - len(head))

def flood_path(i):
    return os.path.join(ctl["dir"], "d%02d" % (i // ctl["perDir"]), "f%04d" % i)

def flood_content(i):
    return (("%05d," % i) * 800).encode()[: 100 + (i * 37) % 3900]

if mode == "reader":
    orig = open(ctl["orig"], "rb").read()
    path = ctl["path"]
    while running():
        try:
            with open(path, "rb", buffering=0) as f:
                data = f.read()
        except OSError as e:
            note("errors", read=out["ops"], err=str(e))
            time.sleep(0.05)
            continue
        out["ops"] += 1
        if len(data) != len(orig):
            note("violations", read=out["ops"], what="length", got=len(data), want=len(orig))
        z = data.find(b"\0")
        if z >= 0:
            end = z
            while end < len(data) and data[end] == 0:
                end += 1
            note("violations", read=out["ops"], what="zero bytes (a hole read without recall)", offset=z, run=end - z)
        for a, b in ctl["statics"]:
            if data[a:b] != orig[a:b]:
                off = first_diff(data[a:b], orig[a:b], a)
                note("violations", read=out["ops"], what="bytes outside the writers' regions differ", offset=off,
                     got=data[off:off + 16].hex(), want=orig[off:off + 16].hex())
        time.sleep(random.uniform(ctl["pauseMin"], ctl["pauseMax"]))

elif mode == "writer":
    w = ctl["writer"]
    off, length = ctl["region"]
    path = ctl["path"]
    expected = open(ctl["orig"], "rb").read()[off:off + length]
    seq = 0
    out["last"] = 0
    burst = random.randint(1, ctl["burstMax"])
    while running():
        seq += 1
        pat = pattern(w, seq, length)
        try:
            fd = os.open(path, os.O_RDWR)
            try:
                before = os.pread(fd, length, off)
                if expected is not None and before != expected:
                    d = first_diff(before, expected)
                    note("violations", seq=seq, what="region is not what this writer last wrote (a write was lost)",
                         offset=off + d, got=before[d:d + 24].hex(), want=expected[d:d + 24].hex())
                expected = None
                n = os.pwrite(fd, pat, off)
                if n != length:
                    note("errors", seq=seq, err="short write %d" % n)
                    continue
                expected = pat
                out["last"] = seq
                out["ops"] += 1
                back = os.pread(fd, length, off)
                if back != pat:
                    d = first_diff(back, pat)
                    note("violations", seq=seq, what="read-back right after the write differs", offset=off + d,
                         got=back[d:d + 24].hex(), want=pat[d:d + 24].hex())
            finally:
                os.close(fd)
        except OSError as e:
            note("errors", seq=seq, err=str(e))
            expected = None
        burst -= 1
        if burst > 0:
            time.sleep(random.uniform(ctl["pauseMin"], ctl["pauseMax"]))
        else:
            time.sleep(random.uniform(ctl["quietMin"], ctl["quietMax"]))
            burst = random.randint(1, ctl["burstMax"])

elif mode == "flood":
    out["passes"] = 0
    while running():
        for i in range(ctl["files"]):
            try:
                with open(flood_path(i), "rb", buffering=0) as f:
                    data = f.read()
            except OSError as e:
                note("errors", file=i, err=str(e))
                continue
            out["ops"] += 1
            want = flood_content(i)
            if data != want:
                note("violations", file=i, what="flood file content differs", offset=first_diff(data, want),
                     got=len(data), want=len(want))
            if i % 50 == 49:
                time.sleep(0.002)
                if not running():
                    break
        else:
            out["passes"] += 1

elif mode == "holder":
    f = open(ctl["path"], "rb")
    if ctl.get("mmap"):
        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        f.close()
        out["first"] = m[:16].hex()
    print("holding", flush=True)
    while running():
        time.sleep(0.05)

print(json.dumps(out), flush=True)
`;
import { adminSocketPath } from "../../ipc/run-dir.js";

interface WorkerSummary {
  mode: string;
  ops: number;
  errors: unknown[];
  errorCount: number;
  violations: unknown[];
  violationCount: number;
  last?: number;
  passes?: number;
}

/** Bytes with no 0x00 in them. */
function nonZeroRandom(n: number): Buffer {
  const b = randomBytes(n);
  for (let i = 0; i < n; i++) if (b[i] === 0) b[i] = 1 + (i % 255);
  return b;
}

function pattern(w: number, seq: number, length: number): Buffer {
  const head = Buffer.from(`w${w}s${String(seq).padStart(10, "0")}|`);
  return Buffer.concat([head, Buffer.alloc(length - head.length, (seq % 251) + 1)]);
}

function floodContent(i: number): Buffer {
  return Buffer.from(`${String(i).padStart(5, "0")},`.repeat(800)).subarray(0, 100 + ((i * 37) % 3900));
}

function floodPath(root: string, i: number): string {
  return join(root, `d${String(Math.floor(i / FLOOD_DIR_FILES)).padStart(2, "0")}`, `f${String(i).padStart(4, "0")}`);
}

/** The byte ranges no writer touches. */
function staticRanges(): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let at = 0;
  for (const [off, len] of [...REGIONS].sort((a, b) => a[0] - b[0])) {
    out.push([at, off]);
    at = off + len;
  }
  out.push([at, SIZE]);
  return out;
}

/** The first offset where two buffers differ, or -1. */
function firstDiff(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/** What is wrong with one read of the target (null: nothing): the readers' check. */
function wrongRead(data: Buffer, orig: Buffer, statics: ReadonlyArray<readonly [number, number]>): string | null {
  if (data.length !== orig.length) return `length ${data.length}, not ${orig.length}`;
  const z = data.indexOf(0);
  if (z >= 0) return `zero byte at ${z} (a hole read without recall)`;
  for (const [a, b] of statics) {
    const d = firstDiff(data.subarray(a, b), orig.subarray(a, b));
    if (d >= 0) return `byte ${a + d} differs outside the writers' regions`;
  }
  return null;
}

/** One archive or release: the file's state, or why it failed (the CLI's "(reason)" at the end). */
type Outcome = { ok: boolean; state?: string; reason?: string; message: string };

describe("release under load (issue 10 item 4)", () => {
  let fs: Ext4;
  let fr: FanrecallInstance;
  let ctlDir: string;
  let stopFile: string;
  const workers: Spawned[] = [];

  function worker(uid: number, mode: string, ctl: Record<string, unknown>): Spawned {
    const s = spawnChild(
      [
        ...setprivAs(uid),
        "/usr/bin/python3",
        "-c",
        WORKER,
        mode,
        JSON.stringify({ stop: stopFile, maxSeconds: 900, ...ctl }),
      ],
      { timeoutMs: 1_000_000 },
    );
    workers.push(s);
    return s;
  }

  function summary(what: string, r: ChildResult): WorkerSummary {
    const last = r.stdout.toString().trim().split("\n").at(-1) ?? "";
    try {
      return JSON.parse(last) as WorkerSummary;
    } catch {
      throw new Error(`${what} ended without a summary (code ${r.code}, signal ${r.signal}): ${r.stderr}`);
    }
  }

  /** One admin request, on `shared` (one request at a time) or on a connection of its own. */
  async function viaClient(op: "archive" | "release", path: string, shared?: AdminClient): Promise<Outcome> {
    const client = shared ?? new AdminClient(adminSocketPath(fr.runDir));
    let reply: AdminReply;
    try {
      reply = await client.request(op, path, 180_000);
    } finally {
      if (!shared) client.close();
    }
    return reply.ok
      ? { ok: true, state: reply.state, message: reply.state ?? "" }
      : { ok: false, reason: reply.reason, message: reply.error ?? "" };
  }

  async function viaCli(op: "archive" | "release", path: string): Promise<Outcome> {
    const r = await fr.cli([op, path]);
    if (r.code === 0) {
      const m = /: (?:already )?(\w+)\n?$/.exec(r.stdout.toString());
      return { ok: true, state: m?.[1], message: r.stdout.toString().trim() };
    }
    const m = /\(([\w-]+)\)\s*$/.exec(r.stderr);
    return { ok: false, reason: m?.[1], message: r.stderr.trim() };
  }

  /** Unexpected supervisor restarts or internal errors in the instance's output. */
  function troubleLines(): string[] {
    return fr
      .output()
      .split("\n")
      .filter((l) =>
        /(listener|recall-service|holder|s3) exited|"reason":"internal-error"|event handling failed/.test(l),
      );
  }

  before(
    async () => {
      if (!isRoot()) return;
      fs = await makeExt4(512);
      ctlDir = mkdtempSync(join(tmpdir(), "fanrecall-stress-"));
      chmodSync(ctlDir, 0o755);
      stopFile = join(ctlDir, "stop");
      fr = await startFanrecall({ watch: [fs.dir], extraArgs: ["--chunk-size", String(MiB)] });
    },
    { timeout: 120_000 },
  );

  after(
    async () => {
      if (!isRoot()) return;
      if (stopFile) writeFileSync(stopFile, "");
      const deadline = Date.now() + 20_000;
      for (const w of workers) {
        await Promise.race([w.result.catch(() => undefined), sleep(Math.max(0, deadline - Date.now()))]);
        w.kill();
      }
      await Promise.allSettled(workers.map((w) => w.result));
      const code = await fr?.stop();
      if (code !== 0 && fr) process.stderr.write(fr.output().slice(-5000));
      await fs?.cleanup();
      if (ctlDir) rmSync(ctlDir, { recursive: true, force: true });
    },
    { timeout: 120_000 },
  );

  rootTest(
    "a file open or mapped elsewhere is not released (busy) and keeps its data; once closed, it is released",
    async () => {
      const path = join(fs.dir, "busy.bin");
      const data = randomBytes(MiB + 4321);
      writeFileSync(path, data);
      chmodSync(path, 0o644);
      const stop = join(ctlDir, "stop-busy");
      for (const mapped of [false, true]) {
        const what = mapped ? "mapped (and closed)" : "open";
        const holder = spawnChild(
          [
            ...setprivAs(READER_UID),
            "/usr/bin/python3",
            "-c",
            WORKER,
            "holder",
            JSON.stringify({ stop, path, mmap: mapped, maxSeconds: 120 }),
          ],
          { timeoutMs: 180_000 },
        );
        workers.push(holder);
        try {
          await new Promise<void>((resolve, reject) => {
            let seen = "";
            holder.child.stdout?.on("data", (b: Buffer) => {
              seen += b.toString();
              if (seen.includes("holding")) resolve();
            });
            void holder.result.then((r) => reject(new Error(`holder ended early: ${r.stderr}`)));
          });
          const r = await fr.cli(["release", path]);
          assert.notEqual(r.code, 0, `release of a file ${what} elsewhere succeeded: ${r.stdout.toString()}`);
          assert.match(r.stderr, /busy/, `release of a file ${what} elsewhere: ${r.stderr}`);
          assert.match(r.stderr, /open/, `the message says why: ${r.stderr}`);
          const [st] = await fr.status([path]);
          assert.equal(st.state, "archived", `a file ${what} elsewhere: ${JSON.stringify(st)}`);
          assert.equal(st.populatedBytes, data.length);
          const seen = await runChild([...setprivAs(FLOOD_UID), "sha256sum", path], { timeoutMs: 60_000 });
          assert.equal(seen.code, 0, seen.stderr);
          assert.equal(seen.stdout.toString().split(" ")[0], sha256(data), `a file ${what} elsewhere lost its data`);
        } finally {
          holder.kill();
          await holder.result;
        }
        const ok = await fr.cli(["release", path]);
        assert.equal(ok.code, 0, `release once the file is no longer ${what}: ${ok.stderr}`);
        assert.match(ok.stdout.toString(), /: released$/m);
        const [st] = await fr.status([path]);
        assert.equal(st.state, "released");
        assert.equal(st.populatedBytes, 0);
        const back = await runChild([...setprivAs(FLOOD_UID), "sha256sum", path], { timeoutMs: 60_000 });
        assert.equal(back.code, 0, back.stderr);
        assert.equal(back.stdout.toString().split(" ")[0], sha256(data), "the released file recalls its bytes");
      }
    },
    { timeout: 180_000 },
  );

  rootTest(
    `${ROUNDS} rounds of archive + release under 8 readers, 2 writers and a flood of 2,000 files: no wrong byte read, no written byte lost`,
    async () => {
      const started = Date.now();
      // The target and a copy of its original bytes outside the watched filesystem.
      const target = join(fs.dir, "target.bin");
      const orig = nonZeroRandom(SIZE);
      writeFileSync(target, orig);
      chmodSync(target, 0o666);
      const origCopy = join(ctlDir, "orig.bin");
      writeFileSync(origCopy, orig);
      chmodSync(origCopy, 0o644);

      // The flood's 2,000 files; the first directory's 100 become stubs.
      const floodRoot = join(fs.dir, "flood");
      mkdirSync(floodRoot);
      for (let d = 0; d < FLOOD_FILES / FLOOD_DIR_FILES; d++)
        mkdirSync(join(floodRoot, `d${String(d).padStart(2, "0")}`), { mode: 0o755 });
      for (let i = 0; i < FLOOD_FILES; i++) writeFileSync(floodPath(floodRoot, i), floodContent(i), { mode: 0o644 });
      const floodStubs = Array.from({ length: FLOOD_DIR_FILES }, (_, i) => floodPath(floodRoot, i));
      const rel = await fr.cli(["release", join(floodRoot, "d00")], 300_000);
      assert.equal(rel.code, 0, `release of the flood's stubs: ${rel.stderr}`);
      const first = await viaClient("archive", target);
      assert.ok(first.ok, `first archive: ${first.message}`);

      const common = { path: target, orig: origCopy };
      const readers = Array.from({ length: READERS }, () =>
        worker(READER_UID, "reader", { ...common, statics: staticRanges(), pauseMin: 0.002, pauseMax: 0.02 }),
      );
      const writers = REGIONS.map((region, w) =>
        worker(WRITER_UID, "writer", { ...common, writer: w, region, ...WRITER_PACE }),
      );
      const flood = worker(FLOOD_UID, "flood", { dir: floodRoot, files: FLOOD_FILES, perDir: FLOOD_DIR_FILES });

      const counts = new Map<string, number>();
      const count = (k: string) => counts.set(k, (counts.get(k) ?? 0) + 1);
      const unexpected: string[] = [];
      /** Failures because the file changed concurrently, but under another reason than stub-changed. */
      const misnamed: string[] = [];
      const outcome = (round: number, op: string, o: Outcome, allowed: readonly string[]): void => {
        if (o.ok) count(`${op}: ${o.state}`);
        else if (allowed.includes(o.reason ?? "")) count(`${op} failed: ${o.reason}`);
        else if (/changed while it was being archived|archived copy differs from the file/.test(o.message)) {
          count(`${op} failed: ${o.reason} (the file changed)`);
          misnamed.push(`round ${round} ${op}: (${o.reason}) ${o.message}`);
        } else unexpected.push(`round ${round} ${op}: (${o.reason}) ${o.message}`);
      };
      const floodReleases = new Map<string, number>();
      const statics = staticRanges();
      const rootViolations: string[] = [];
      for (let round = 1; round <= ROUNDS; round++) {
        // A read first (recalled if the last round released the file): every round then
        // archives and releases a resident file, and this read is checked like the readers'.
        const seen = await readFile(target);
        const problem = wrongRead(seen, orig, statics);
        if (problem) rootViolations.push(`round ${round}: ${problem}`);
        const call = round % 20 === 0 ? viaCli : viaClient;
        outcome(round, "archive", await call("archive", target), ["stub-changed"]);
        outcome(round, "release", await call("release", target), ["busy", "stub-changed"]);
        // Now and then the flood's stubs (recalled by the flood meanwhile) are released again.
        if (round % 50 === 25) {
          const client = new AdminClient(adminSocketPath(fr.runDir));
          const outcomes: Outcome[] = [];
          try {
            for (const p of floodStubs) outcomes.push(await viaClient("release", p, client));
          } finally {
            client.close();
          }
          for (const o of outcomes) {
            const k = o.ok ? `ok ${o.state}` : `failed ${o.reason}`;
            floodReleases.set(k, (floodReleases.get(k) ?? 0) + 1);
            if (!o.ok && o.reason !== "busy" && o.reason !== "stub-changed")
              unexpected.push(`round ${round} flood release: (${o.reason}) ${o.message}`);
          }
        }
        for (const w of [...readers, ...writers, flood])
          assert.equal(w.child.exitCode, null, `a worker ended early:\n${fr.output().slice(-2000)}`);
      }
      const roundsDone = Date.now();

      writeFileSync(stopFile, "");
      const readerSums = (await Promise.all(readers.map((w) => w.result))).map((r, i) => summary(`reader ${i}`, r));
      const writerSums = (await Promise.all(writers.map((w) => w.result))).map((r, i) => summary(`writer ${i}`, r));
      const floodSum = summary("flood", await flood.result);

      const report = [
        `rounds: ${ROUNDS} in ${((roundsDone - started) / 1000).toFixed(1)} s`,
        `outcomes: ${JSON.stringify(Object.fromEntries([...counts].sort()))}`,
        `flood stub releases: ${JSON.stringify(Object.fromEntries(floodReleases))}`,
        `reads per reader: ${readerSums.map((s) => s.ops).join(" ")}`,
        `writes per writer: ${writerSums.map((s) => s.ops).join(" ")} (last ${writerSums.map((s) => s.last).join(" ")})`,
        `flood: ${floodSum.ops} reads, ${floodSum.passes} full passes`,
      ].join("\n");
      process.stderr.write(`${report}\n`);

      assert.deepEqual(rootViolations, [], `the test's own reads got WRONG bytes\n${report}`);
      for (const [i, s] of readerSums.entries()) {
        assert.equal(s.violationCount, 0, `reader ${i} read WRONG bytes: ${JSON.stringify(s.violations)}\n${report}`);
        assert.equal(s.errorCount, 0, `reader ${i} got errors: ${JSON.stringify(s.errors)}\n${report}`);
        assert.ok(s.ops > 0, `reader ${i} never read`);
      }
      for (const [i, s] of writerSums.entries()) {
        assert.equal(s.violationCount, 0, `writer ${i} LOST bytes: ${JSON.stringify(s.violations)}\n${report}`);
        assert.equal(s.errorCount, 0, `writer ${i} got errors: ${JSON.stringify(s.errors)}\n${report}`);
        assert.ok(s.ops > 0 && (s.last ?? 0) > 0, `writer ${i} never wrote`);
      }
      assert.equal(floodSum.violationCount, 0, `the flood read WRONG bytes: ${JSON.stringify(floodSum.violations)}`);
      assert.equal(floodSum.errorCount, 0, `the flood got errors: ${JSON.stringify(floodSum.errors)}`);
      assert.ok((floodSum.passes ?? 0) >= 1, `the flood never read all ${FLOOD_FILES} files\n${report}`);
      const released = counts.get("release: released") ?? 0;
      assert.ok(released >= MIN_RELEASED, `only ${released} of ${ROUNDS} releases freed the file\n${report}`);

      // Quiet now: released once more, then read through a recall; every region holds its
      // writer's last pattern, everything else the original bytes.
      let last: Outcome = { ok: false, message: "not tried" };
      for (let i = 0; i < 20; i++) {
        last = await viaClient("release", target);
        if (last.ok && last.state === "released") break;
        await sleep(500);
      }
      assert.ok(last.ok && last.state === "released", `final release: (${last.reason}) ${last.message}`);
      const [st] = await fr.status([target]);
      assert.equal(st.state, "released");
      assert.equal(st.populatedBytes, 0);
      const read = await runChild([...setprivAs(READER_UID), "cat", target], { timeoutMs: 120_000 });
      assert.equal(read.code, 0, `final read: ${read.stderr}\n${fr.output().slice(-3000)}`);
      const got = read.stdout;
      assert.equal(got.length, SIZE);
      const want = Buffer.from(orig);
      for (const [w, [off, len]] of REGIONS.entries()) pattern(w, writerSums[w].last!, len).copy(want, off);
      const d = firstDiff(got, want);
      assert.equal(
        d,
        -1,
        `final content differs at byte ${d} (regions ${JSON.stringify(REGIONS)}): got ${got.subarray(d, d + 16).toString("hex")}, want ${want.subarray(d, d + 16).toString("hex")}`,
      );
      assert.equal(sha256(got), sha256(want));
      // The stubs of the flood still read right after all this.
      for (const p of floodStubs.slice(0, 10)) {
        const r = await runChild([...setprivAs(FLOOD_UID), "cat", p], { timeoutMs: 60_000 });
        const i = Number(/f(\d+)$/.exec(p)![1]);
        assert.equal(r.code, 0, r.stderr);
        assert.ok(r.stdout.equals(floodContent(i)), `flood file ${i} differs`);
      }
      assert.deepEqual(troubleLines(), [], "the listener or recall service failed or restarted");
      // Last, so that the data checks above have run: a failed archive or release says why.
      assert.deepEqual(unexpected, [], `unexpected failures:\n${unexpected.join("\n")}\n${report}`);
      assert.deepEqual(
        misnamed.slice(0, 10),
        [],
        `${misnamed.length} archive/release failures because the file changed meanwhile were not reported as stub-changed\n${report}`,
      );
      process.stderr.write(`release stress: ${((Date.now() - started) / 1000).toFixed(1)} s in all\n`);
    },
    { timeout: 900_000 },
  );
});
