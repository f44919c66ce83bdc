// Fairness of the recall budget, end to end (issue 10 item 5): many readers of one slow stub
// cannot starve everyone else. A real `fanrecall start` (embedded s3rver) with
// FANRECALL_MAX_RECALLS=4 and the default caller share (0.5: 2 recalls per uid or cgroup).
// Recalls are made slow by SIGSTOPping the embedded store (SIGCONT in finally), so readers
// stay held in their read() for as long as a case needs them there.
//
// Each reader is a real `sha256sum` as some uid: a held reader must end with the file's right
// sum once the store runs again; a refused one must fail fast with EAGAIN ("Resource
// temporarily unavailable"), far below the recall timeout.
import { after, before, describe } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isRoot, rootTest } from "../helpers/root.js";
import { runChild, setprivAs, spawnChild } from "../helpers/child.js";
import type { ChildResult, Spawned } from "../helpers/child.js";
import { makeExt4 } from "../helpers/loop-fs.js";
import type { Ext4 } from "../helpers/loop-fs.js";
import { startFanrecall } from "../helpers/fanrecall-instance.js";
import type { FanrecallInstance } from "../helpers/fanrecall-instance.js";
import { sha256 } from "../helpers/reader-files.js";

const MiB = 1024 * 1024;
const MAX_RECALLS = 4;
/** Far above how long any case keeps the store stopped: held readers never time out here. */
const RECALL_TIMEOUT_MS = 90_000;
/** A refused reader must be answered at once; this bound only has to be far below the timeout. */
const FAST_MS = 5_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The cgroup v2 path of a process ("" when there is no unified hierarchy). */
function cgroupOf(pid: number | "self"): string {
  const m = /^0::(.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, "utf8"));
  return m ? m[1].trim() : "";
}

/** Where the cgroup v2 hierarchy is mounted, or null. */
async function cgroup2Root(): Promise<string | null> {
  const r = await runChild(["findmnt", "-n", "-t", "cgroup2", "-o", "TARGET"]);
  const first = r.stdout.toString().trim().split("\n")[0];
  return r.code === 0 && first ? first : null;
}

/** The kernel stack of a process: held readers sit in fanotify_handle_event. "" if unreadable. */
function kernelStack(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stack`, "utf8");
  } catch {
    return "";
  }
}

interface Reader {
  readonly what: string;
  readonly path: string;
  readonly sha: string;
  readonly spawned: Spawned;
  readonly started: number;
  exited: boolean;
  ended?: number;
  result?: ChildResult;
}

describe("recall budget: distinct files, a fair share per caller (issue 10 item 5)", () => {
  let fs: Ext4;
  let fr: FanrecallInstance;
  let cgRoot: string | null = null;
  /** Per-uid cgroups, used only when this test itself runs in a non-root cgroup (see below). */
  const cgroupsMade: string[] = [];
  let uidCgroups = false;
  const all: Reader[] = [];

  function storePid(): number {
    const marker = join(fr.stateDir, "s3");
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      let cmd: string;
      try {
        cmd = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").join(" ");
      } catch {
        continue;
      }
      if (cmd.includes("s3rver-main") && cmd.includes(marker)) return Number(name);
    }
    throw new Error(`no embedded s3rver process for ${marker}:\n${fr.output().slice(-2000)}`);
  }

  /** Runs `fn` with the embedded store SIGSTOPped; SIGCONT whatever happens. */
  async function withStoreStopped<T>(fn: (resume: () => void) => Promise<T>): Promise<T> {
    const pid = storePid();
    process.kill(pid, "SIGSTOP");
    const resume = () => {
      try {
        process.kill(pid, "SIGCONT");
      } catch {
        // already gone
      }
    };
    try {
      return await fn(resume);
    } finally {
      resume();
    }
  }

  function makeCgroup(name: string): string {
    assert.ok(cgRoot, "no cgroup v2 hierarchy");
    const dir = join(cgRoot, name);
    if (!existsSync(dir)) mkdirSync(dir);
    cgroupsMade.push(dir);
    return dir;
  }

  /** Writes `n` released stubs of random bytes; returns path -> sha256. */
  async function releasedFiles(prefix: string, n: number): Promise<Array<{ path: string; sha: string }>> {
    const files: Array<{ path: string; sha: string }> = [];
    for (let i = 0; i < n; i++) {
      const path = join(fs.dir, `${prefix}-${i}.bin`);
      const data = randomBytes(2 * MiB + 1000 * i + 17);
      writeFileSync(path, data);
      chmodSync(path, 0o644);
      files.push({ path, sha: sha256(data) });
    }
    const r = await fr.cli(["release", ...files.map((f) => f.path)]);
    assert.equal(r.code, 0, `release ${prefix}: ${r.stderr}\n${fr.output().slice(-3000)}`);
    for (const st of await fr.status(files.map((f) => f.path))) assert.equal(st.state, "released", st.path);
    return files;
  }

  /** Starts `sha256sum PATH` as uid (and, when given, inside cgroup directory `cg`). */
  function read(what: string, uid: number, file: { path: string; sha: string }, cg?: string): Reader {
    const cmd = [...setprivAs(uid), "sha256sum", file.path];
    const cgroup = cg ?? (uidCgroups ? makeCgroup(`fanrecall-fair-uid-${uid}`) : undefined);
    const argv = cgroup ? ["sh", "-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, cgroup, ...cmd] : cmd;
    const spawned = spawnChild(argv, { timeoutMs: RECALL_TIMEOUT_MS + 60_000 });
    const reader: Reader = { what, path: file.path, sha: file.sha, spawned, started: Date.now(), exited: false };
    void spawned.result.then(
      (r) => {
        reader.exited = true;
        reader.ended = Date.now();
        reader.result = r;
      },
      () => {
        reader.exited = true;
        reader.ended = Date.now();
      },
    );
    all.push(reader);
    return reader;
  }

  /** Waits until every reader is held in fanotify (alive, its kernel stack in fanotify). */
  async function waitHeld(readers: readonly Reader[], what: string): Promise<void> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const exited = readers.filter((r) => r.exited);
      assert.equal(
        exited.length,
        0,
        `${what}: ${exited.length} reader(s) ended instead of being held, e.g. ${exited[0]?.what}: ` +
          `code ${exited[0]?.result?.code} ${exited[0]?.result?.stderr}\n${fr.output().slice(-3000)}`,
      );
      const notYet = readers.filter((r) => {
        const stack = kernelStack(r.spawned.pid);
        // An unreadable stack (no CONFIG_STACKTRACE) leaves "still alive" as the only sign.
        return stack !== "" && !stack.includes("fanotify");
      });
      if (notYet.length === 0) return;
      assert.ok(
        Date.now() < deadline,
        `${what}: ${notYet.length} reader(s) not held after 60 s, e.g. ${notYet[0].what}:\n${kernelStack(notYet[0].spawned.pid)}`,
      );
      await sleep(100);
    }
  }

  /** The reader was refused at once with EAGAIN. */
  async function assertRefused(r: Reader, why: string): Promise<void> {
    const res = await r.spawned.result;
    const took = (r.ended ?? Date.now()) - r.started;
    assert.notEqual(res.code, 0, `${r.what} was served, but ${why}`);
    assert.match(res.stderr, /Resource temporarily unavailable/, `${r.what}: ${res.stderr}`);
    assert.ok(took < FAST_MS, `${r.what}: EAGAIN only after ${took} ms`);
  }

  /** The reader got the file's exact bytes. */
  async function assertServed(r: Reader): Promise<void> {
    const res = await r.spawned.result;
    assert.equal(res.code, 0, `${r.what} failed: ${res.signal ?? ""} ${res.stderr}\n${fr.output().slice(-3000)}`);
    assert.equal(res.stdout.toString().split(" ")[0], r.sha, `${r.what}: WRONG bytes from ${r.path}`);
  }

  function notAdmittedLines(): string[] {
    return fr
      .output()
      .split("\n")
      .filter((l) => l.includes("recall not admitted"));
  }

  /** Waits (the log line follows the answer) for a refusal with `admission` after the first `since` ones. */
  async function waitLogged(since: number, admission: string): Promise<void> {
    const deadline = Date.now() + 15_000;
    while (
      !notAdmittedLines()
        .slice(since)
        .some((l) => l.includes(`"admission":"${admission}"`))
    ) {
      assert.ok(Date.now() < deadline, `no ${admission} refusal logged:\n${notAdmittedLines().join("\n")}`);
      await sleep(100);
    }
  }

  before(
    async () => {
      if (!isRoot()) return;
      fs = await makeExt4(256);
      cgRoot = await cgroup2Root();
      // The budget counts a non-root cgroup as a caller of its own. Where this test runs in
      // one (a systemd service, a container), every reader would share it, so each uid gets
      // its own cgroup to keep the uid cases about uids.
      const own = cgroupOf("self");
      uidCgroups = own !== "" && own !== "/";
      fr = await startFanrecall({
        watch: [fs.dir],
        env: {
          FANRECALL_MAX_RECALLS: String(MAX_RECALLS),
          FANRECALL_RECALL_TIMEOUT_MS: String(RECALL_TIMEOUT_MS),
        },
      });
    },
    { timeout: 120_000 },
  );

  after(
    async () => {
      if (!isRoot()) return;
      for (const r of all) r.spawned.kill();
      await Promise.allSettled(all.map((r) => r.spawned.result));
      for (const dir of cgroupsMade.reverse()) {
        try {
          rmdirSync(dir);
        } catch {
          // already removed, or a process still there: the kernel keeps it until it is empty
        }
      }
      const code = await fr?.stop();
      if (code !== 0 && fr) process.stderr.write(fr.output().slice(-5000));
      await fs?.cleanup();
    },
    { timeout: 120_000 },
  );

  rootTest(
    "200 readers of one slow stub count once; one uid gets 2 recalls and EAGAIN for a third; another uid is still admitted",
    async () => {
      const [crowd, theirs, ...mine] = await releasedFiles("share", 5);
      const refusedBefore = notAdmittedLines().length;
      await withStoreStopped(async (resume) => {
        const crowdReaders = Array.from({ length: 200 }, (_, i) => read(`uid 1235 crowd reader ${i}`, 1235, crowd));
        await waitHeld(crowdReaders, "200 readers of one stub");
        assert.equal(notAdmittedLines().length, refusedBefore, "readers of one file were refused: they count once");

        // Three distinct stubs at once by uid 1234: its share is 2 of the 4.
        const mineReaders = mine.map((f, i) => read(`uid 1234 reader of file ${i}`, 1234, f));
        const deadline = Date.now() + FAST_MS + 5_000;
        while (mineReaders.filter((r) => r.exited).length === 0 && Date.now() < deadline) await sleep(50);
        await sleep(500);
        const refused = mineReaders.filter((r) => r.exited);
        assert.equal(
          refused.length,
          1,
          `uid 1234 read 3 stubs: expected exactly one refused at once, got ${refused.length}:\n` +
            mineReaders.map((r) => `${r.what}: exited=${r.exited} ${r.result?.stderr ?? ""}`).join("\n"),
        );
        await assertRefused(refused[0], "uid 1234 already holds its share (2 of 4)");
        const held = mineReaders.filter((r) => !r.exited);
        await waitHeld(held, "uid 1234's two admitted readers");
        await waitLogged(refusedBefore, "caller-over-share");

        // Another uid is admitted although uid 1234 and the crowd are waiting (4 of 4 now).
        const other = read("uid 1236 reader", 1236, theirs);
        await waitHeld([other], "uid 1236's reader while the others wait");
        await sleep(1000);
        await waitHeld([...crowdReaders, ...held, other], "every admitted reader, still");

        resume();
        for (const r of [...crowdReaders, ...held, other]) await assertServed(r);
        // With the budget free again, the refused file is served to the same uid.
        const again = read("uid 1234 reader of the refused file, again", 1234, {
          path: refused[0].path,
          sha: refused[0].sha,
        });
        await assertServed(again);
      });
    },
    { timeout: 300_000 },
  );

  rootTest(
    "the rest get EAGAIN only when the whole budget is used; readers of a file being recalled still join it",
    async () => {
      const files = await releasedFiles("full", 5);
      const refusedBefore = notAdmittedLines().length;
      await withStoreStopped(async (resume) => {
        // Two uids take 2 recalls each: both within their share, the budget (4) is full.
        const filling = [
          read("uid 1234 reader of full-0", 1234, files[0]),
          read("uid 1234 reader of full-1", 1234, files[1]),
          read("uid 1235 reader of full-2", 1235, files[2]),
          read("uid 1235 reader of full-3", 1235, files[3]),
        ];
        await waitHeld(filling, "4 readers filling the budget");
        assert.equal(notAdmittedLines().length, refusedBefore, "a reader within its share and the budget was refused");

        // A third uid, with no recall of its own, reads a fifth file: the whole budget is used.
        const fifth = read("uid 1236 reader of full-4", 1236, files[4]);
        await assertRefused(fifth, "only a full budget refuses a caller under its share");
        await waitLogged(refusedBefore, "budget-full");

        // A file already being recalled is joined, uncounted, whoever reads it.
        const joiners = [read("uid 1236 reader of full-0 (joins)", 1236, files[0])];
        joiners.push(read("uid 1234 reader of full-2 (joins)", 1234, files[2]));
        await waitHeld([...filling, ...joiners], "readers joining recalls in progress");

        resume();
        for (const r of [...filling, ...joiners]) await assertServed(r);
        await assertServed(read("uid 1236 reader of full-4, again", 1236, files[4]));
      });
    },
    { timeout: 300_000 },
  );

  rootTest(
    "one cgroup is one caller: readers of two uids in one cgroup share its 2 recalls",
    async (t) => {
      if (!cgRoot) {
        t.skip("no cgroup v2 hierarchy mounted");
        return;
      }
      const files = await releasedFiles("cgroup", 4);
      const cg = makeCgroup(`fanrecall-fair-${process.pid}`);
      const refusedBefore = notAdmittedLines().length;
      await withStoreStopped(async (resume) => {
        const first = [
          read("uid 1237 in the cgroup, cgroup-0", 1237, files[0], cg),
          read("uid 1238 in the cgroup, cgroup-1", 1238, files[1], cg),
        ];
        await waitHeld(first, "two uids in one cgroup");
        assert.equal(cgroupOf(first[0].spawned.pid), cg.slice(cgRoot!.length));
        // uid 1238 holds one recall only, but its cgroup holds two: refused.
        const third = read("uid 1238 in the cgroup, cgroup-2", 1238, files[2], cg);
        await assertRefused(third, "the cgroup already holds its share (2 of 4)");
        await waitLogged(refusedBefore, "caller-over-share");
        // The same uid outside that cgroup is a caller of its own.
        const outside = read("uid 1238 outside the cgroup, cgroup-3", 1238, files[3], uidCgroups ? undefined : "");
        await waitHeld([outside], "uid 1238 outside the cgroup");

        resume();
        for (const r of [...first, outside]) await assertServed(r);
      });
    },
    { timeout: 300_000 },
  );
});
