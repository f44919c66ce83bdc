// Space management end to end (`fanrecall policy`): a 64 MiB loop ext4 watched by a real
// `fanrecall start` (embedded s3rver), filled past its high watermark with 4 MiB files whose
// atimes are set apart (and modified days ago, so they are due to be archived), a pinned one,
// an excluded one and small ones. A dry run changes nothing and plans exactly what the real
// pass then does: archive every file it may touch, and release the least recently used ones
// until use is at or below the low watermark. Pinned, excluded and small files are untouched,
// and every file reads back right as an unprivileged user. A file recalled a moment ago (its
// stub state says when) is not among the next pass's candidates.
import { after, before, describe } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, statSync, statfsSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as native from "../../native/index.js";
import { bytesToFree, usedPct } from "../../cli/policy-select.js";
import { isRoot, rootTest } from "../helpers/root.js";
import { runAsUid } from "../helpers/child.js";
import { makeExt4 } from "../helpers/loop-fs.js";
import type { Ext4 } from "../helpers/loop-fs.js";
import { startFanrecall } from "../helpers/fanrecall-instance.js";
import type { FanrecallInstance } from "../helpers/fanrecall-instance.js";
import { sha256 } from "../helpers/reader-files.js";

const MiB = 1024 * 1024;
const USER = 1234;
const HOUR = 3_600_000;
/** The LRU files, oldest use first. */
const LRU = Array.from({ length: 8 }, (_, i) => `lru/f${i}.bin`);
const PINNED = "pinned.bin";
const EXCLUDED = "skip/excluded.bin";
const SMALL = Array.from({ length: 8 }, (_, i) => `small/s${i}.bin`);

interface Line {
  readonly path?: string;
  readonly action?: string;
  readonly summary?: boolean;
  readonly usedPctAfter?: number;
  readonly archived?: number;
  readonly released?: number;
}

function lines(stdout: Buffer): Line[] {
  return stdout
    .toString()
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);
}

function pathsOf(ls: Line[], action: string): string[] {
  return ls.filter((l) => l.action === action).map((l) => l.path ?? "");
}

describe("fanrecall policy", () => {
  let fs: Ext4;
  let fr: FanrecallInstance;
  let dir: string;
  const shas = new Map<string, string>();
  const abs = (rel: string) => join(dir, rel);

  /** A world-readable file of random bytes, modified two days ago, last read `agoMs` ago. */
  function make(rel: string, size: number, agoMs: number): void {
    const data = randomBytes(size);
    mkdirSync(join(abs(rel), ".."), { recursive: true, mode: 0o755 });
    writeFileSync(abs(rel), data, { mode: 0o644 });
    shas.set(rel, sha256(data));
    const now = Date.now();
    utimesSync(abs(rel), new Date(now - agoMs), new Date(now - 48 * HOUR));
  }

  /** Watermarks just below today's use, and low enough that `files` 4 MiB files must go. */
  function watermarks(files: number): { above: number; to: number; args: string[] } {
    const before = usedPct(statfsSync(dir));
    const perFile = (100 * 4 * MiB) / (statfsSync(dir).bsize * statfsSync(dir).blocks);
    const above = Math.floor(before) - 1;
    const to = Math.floor(before - (files - 0.5) * perFile);
    return { above, to, args: ["--release-above", String(above), "--release-to", String(to)] };
  }

  /** How many 4 MiB files must go for use to reach `to`. */
  function filesToFree(to: number): number {
    return Math.ceil(bytesToFree(statfsSync(dir), to) / (4 * MiB));
  }

  const policy = (args: string[]) =>
    fr.cli(["policy", "--once", "--json", "--exclude", "skip/**", ...args, dir], 180_000);

  before(
    async () => {
      if (!isRoot()) return;
      fs = await makeExt4(64);
      dir = fs.dir;
      // Oldest use first; the pinned, excluded and small ones are older still (they would go first).
      LRU.forEach((rel, i) => make(rel, 4 * MiB, (30 - i) * HOUR));
      make(PINNED, 4 * MiB, 40 * HOUR);
      make(EXCLUDED, 4 * MiB, 40 * HOUR);
      for (const rel of SMALL) make(rel, 512 * 1024, 40 * HOUR);
      fr = await startFanrecall({ watch: [dir] });
      const r = await fr.cli(["pin", abs(PINNED)]);
      assert.equal(r.code, 0, r.stderr);
    },
    { timeout: 60_000 },
  );

  after(
    async () => {
      if (!isRoot()) return;
      await fr?.stop();
      await fs?.cleanup();
    },
    { timeout: 60_000 },
  );

  rootTest(
    "a dry run changes nothing; one pass gets below the low watermark releasing exactly the least recently used",
    async () => {
      const w = watermarks(3);
      const k = filesToFree(w.to);
      assert.ok(k >= 2 && k <= 5, `a few files must go (${k})`);
      const expected = LRU.slice(0, k).map(abs);
      const atimes = LRU.map((rel) => statSync(abs(rel)).atimeMs);

      const dry = await policy(["--dry-run", ...w.args]);
      assert.equal(dry.code, 0, dry.stderr);
      const planned = lines(dry.stdout);
      assert.deepEqual(pathsOf(planned, "archive").sort(), LRU.map(abs).sort());
      assert.deepEqual(pathsOf(planned, "release"), expected);
      assert.equal(dry.stderr.includes('"audit"'), false, "a dry run audits nothing: it does nothing");
      for (const s of await fr.status([dir])) assert.equal(s.state, "resident", `${s.path} after a dry run`);

      const r = await policy(w.args);
      assert.equal(r.code, 0, r.stderr);
      const done = lines(r.stdout);
      assert.deepEqual(pathsOf(done, "archive").sort(), LRU.map(abs).sort());
      assert.deepEqual(pathsOf(done, "release"), expected);
      const summary = done.find((l) => l.summary === true);
      assert.ok(summary && (summary.usedPctAfter ?? 100) <= w.to, JSON.stringify(summary));
      assert.ok(usedPct(statfsSync(dir)) <= w.to, "statfs agrees");
      assert.match(r.stderr, /"audit":"policy","action":"release"/);
      // Archiving read every file, and none looks used for it.
      LRU.forEach((rel, i) => assert.equal(statSync(abs(rel)).atimeMs, atimes[i], `${rel} atime`));

      const status = new Map((await fr.status([dir])).map((s) => [s.path, s]));
      LRU.forEach((rel, i) => assert.equal(status.get(abs(rel))?.state, i < k ? "released" : "archived", rel));
      assert.equal(status.get(abs(PINNED))?.state, "resident");
      assert.equal((status.get(abs(PINNED)) as { pinned?: boolean } | undefined)?.pinned, true);
      assert.equal(status.get(abs(EXCLUDED))?.state, "resident");
      for (const rel of SMALL) assert.equal(status.get(abs(rel))?.state, "resident", rel);
    },
    { timeout: 300_000 },
  );

  rootTest(
    "a file recalled a moment ago is not a candidate of the next pass; every file reads back right as a user",
    async () => {
      const first = abs(LRU[0]);
      const read = await runAsUid(USER, ["sha256sum", first]);
      assert.equal(read.code, 0, read.stderr);
      assert.equal(read.stdout.toString().split(" ")[0], shas.get(LRU[0]));
      const state = JSON.parse(native.getxattr(first, "trusted.fanrecall")?.toString() ?? "{}") as { rt?: number };
      assert.ok(state.rt !== undefined && Date.now() - state.rt < 60_000, `the last recall time is kept: ${state.rt}`);

      // Its atime is the archived one again (older than every other file's), yet it was just used.
      const status = new Map((await fr.status([dir])).map((s) => [s.path, s.state]));
      const oldestArchived = LRU.slice(1).find((rel) => status.get(abs(rel)) === "archived");
      assert.ok(oldestArchived !== undefined, JSON.stringify([...status]));
      const w = watermarks(1);
      const again = lines((await policy(["--dry-run", ...w.args])).stdout);
      const releases = pathsOf(again, "release");
      assert.ok(!releases.includes(first), "the file just recalled is not released again at once");
      assert.equal(releases[0], abs(oldestArchived), JSON.stringify(again));

      for (const rel of [...LRU, PINNED, EXCLUDED, ...SMALL]) {
        const r = await runAsUid(USER, ["sha256sum", abs(rel)]);
        assert.equal(r.code, 0, `${rel}: ${r.stderr}`);
        assert.equal(r.stdout.toString().split(" ")[0], shas.get(rel), rel);
      }
    },
    { timeout: 300_000 },
  );

  rootTest("pin and unpin: only root, through the listener; unpin removes the xattr", async () => {
    const p = abs(PINNED);
    assert.notEqual(native.getxattr(p, "trusted.fanrecall.pin"), null);
    const xattr = (op: string, path: string) => [
      "/usr/bin/python3",
      "-c",
      `import os, sys; os.${op}(sys.argv[1], "trusted.fanrecall.pin"${op === "setxattr" ? ', b"1"' : ""})`,
      path,
    ];
    const removed = await runAsUid(USER, xattr("removexattr", p));
    assert.match(removed.stderr, /PermissionError|Operation not permitted/, "a user cannot remove the pin");
    const forged = await runAsUid(USER, xattr("setxattr", abs(LRU[7])));
    assert.match(forged.stderr, /PermissionError|Operation not permitted/, "nor forge one");
    const r = await fr.cli(["unpin", p]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(native.getxattr(p, "trusted.fanrecall.pin"), null);
    const status = (await fr.status([p]))[0] as { pinned?: boolean };
    assert.equal(status.pinned, false);
  });

  rootTest(
    "fanrecall start --policy-file runs the policy beside the rest: idle files get archived ahead",
    async () => {
      const small = await makeExt4(64);
      const file = join(small.dir, "..", "policy.json");
      writeFileSync(file, JSON.stringify({ archiveAfter: "1m", minSize: "1M", interval: "1s", exclude: ["skip/**"] }));
      let other: FanrecallInstance | undefined;
      try {
        const idle = join(small.dir, "idle.bin");
        writeFileSync(idle, randomBytes(2 * MiB), { mode: 0o644 });
        utimesSync(idle, new Date(), new Date(Date.now() - 48 * HOUR));
        mkdirSync(join(small.dir, "skip"));
        writeFileSync(join(small.dir, "skip", "old.bin"), randomBytes(2 * MiB));
        utimesSync(join(small.dir, "skip", "old.bin"), new Date(), new Date(Date.now() - 48 * HOUR));
        writeFileSync(join(small.dir, "fresh.bin"), randomBytes(2 * MiB));
        other = await startFanrecall({ watch: [small.dir], extraArgs: ["--policy-file", file] });
        const deadline = Date.now() + 60_000;
        let states = new Map<string, string>();
        while (Date.now() < deadline && states.get(idle) !== "archived") {
          await new Promise((r) => setTimeout(r, 500));
          states = new Map((await other.status([small.dir])).map((s) => [s.path, s.state]));
        }
        assert.equal(states.get(idle), "archived", other.output().slice(-2000));
        assert.equal(states.get(join(small.dir, "fresh.bin")), "resident");
        assert.equal(states.get(join(small.dir, "skip", "old.bin")), "resident");
        assert.match(other.output(), /"audit":"policy","action":"archive"/);
      } finally {
        await other?.stop();
        await small.cleanup();
      }
    },
    { timeout: 120_000 },
  );
});
