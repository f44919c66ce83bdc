// bench/scenario-12-real-workload.ts: a real workload: a program reading every byte of every
// file of a released tree of thousands of small files, caches dropped.
//
// The tree: a copy of the project's own node_modules packages with the most files, taken until
// it holds at least TREE_FILES regular files (symlinks and then-empty directories dropped, so
// that the same tree can be stored as objects), on the run's watched ext4 loop filesystem.
// Setup, once: a never-archived twin of the tree on the same filesystem; the tree uploaded as
// objects (rclone copy) into a bucket of the run's Swift; then the tree archived and released
// with `fanrecall release` (which archives first), its files split across RELEASE_WORKERS
// concurrent commands (each command takes many paths but handles one file at a time).
// Per rep, interleaved (contest.ts), each timing `tar cf - -C DIR . | cat >/dev/null` after
// drop_caches (an archive on a pipe: GNU tar skips reading contents when it writes /dev/null):
// (a) fanrecall: every file made its released stub again, a fresh warmed-up instance
// (context.withStubs); (b) rclone mount (--vfs-cache-mode full, fresh mount and cache) of the
// uploaded bucket; (c) the resident twin, read with no fanrecall instance running. After each
// timed read, a digest of every file's path and sha256 must equal the original tree's, so a
// fast wrong answer fails the scenario. GNU tar exits 1 with "file changed as we read it" when
// a file's ctime moves during its read, as a recall's writes and stub-state update make it:
// accepted (when those are its only complaints), counted, and shown in the row's note.
// Targets: fanrecall's time <= 1.0x rclone's; against the resident tree for information.
// Owns: its filesystem (removed at cleanup); instances and mounts are stopped in finally.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runChild } from "../test/helpers/child.js";
import type { Scenario } from "./context.js";
import { writeRandomFile } from "./context.js";
import { runContest } from "./contest.js";
import { dropCaches, nowMs } from "./measure.js";
import { uploadTree, withPeer } from "./peers.js";
import { adminOp, saveStub } from "./stubs.js";

const TREE_FILES = 5_000;
const RELEASE_WORKERS = 16;
const NODE_MODULES = fileURLToPath(new URL("../node_modules", import.meta.url));
const TAR_TIMEOUT_MS = 15 * 60_000;
const SETUP_TIMEOUT_MS = 30 * 60_000;
const ANCHOR =
  'published anchor: "a kernel build from a fanotify-HSM-released tree was 2.9% slower than from local disk"';

/** Regular files beneath dir (paths relative to it), sorted; symlinks are not followed. */
function regularFiles(dir: string, rel = ""): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const p = rel === "" ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) out.push(...regularFiles(dir, p));
    else if (e.isFile()) out.push(p);
  }
  return out.sort();
}

/** Top-level entries of node_modules with the most regular files, until they hold TREE_FILES. */
function pickPackages(): string[] {
  const counts = readdirSync(NODE_MODULES, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => ({ name: e.name, files: regularFiles(NODE_MODULES, e.name).length }))
    .sort((a, b) => b.files - a.files || a.name.localeCompare(b.name));
  const picked: string[] = [];
  let total = 0;
  for (const c of counts) {
    if (total >= TREE_FILES) break;
    picked.push(c.name);
    total += c.files;
  }
  if (total < TREE_FILES) throw new Error(`node_modules holds only ${total} regular files, fewer than ${TREE_FILES}`);
  return picked;
}

/** One sha256 over every regular file's relative path and content sha256, in path order. */
function treeDigest(dir: string): { digest: string; files: number; bytes: number } {
  const all = createHash("sha256");
  let bytes = 0;
  const files = regularFiles(dir);
  for (const f of files) {
    const data = readFileSync(join(dir, f));
    bytes += data.length;
    all.update(`${f}\0${createHash("sha256").update(data).digest("hex")}\n`);
  }
  return { digest: all.digest("hex"), files: files.length, bytes };
}

/** Runs a bash script (pipefail); returns its stderr lines; throws unless it exits 0 or `allowed` says so. */
async function sh(
  script: string,
  timeoutMs: number,
  allowed: (code: number, stderr: readonly string[]) => boolean = () => false,
): Promise<string[]> {
  const r = await runChild(["bash", "-c", `set -euo pipefail; ${script}`], { timeoutMs });
  const stderr = r.stderr.split("\n").filter((l) => l.trim() !== "");
  if (r.code !== 0 && !(r.code !== null && allowed(r.code, stderr)))
    throw new Error(`'${script}' failed (${r.code ?? r.signal}): ${r.stderr.slice(-2000)}`);
  return stderr;
}

/** GNU tar's warning (and exit 1) when a file's ctime moved while it read it: a recall writes the data and the stub state. */
const CHANGED = /^tar: .*: file changed as we read it$/;

/**
 * drop_caches, then the timed tar of dir through a pipe, then its digest must be `expected`.
 * Tar's exit 1 is accepted when its only complaints are CHANGED lines (the digest still checks
 * every byte); their count is returned.
 */
async function tarRead(who: string, dir: string, expected: string): Promise<{ seconds: number; changed: number }> {
  await dropCaches();
  const t = nowMs();
  const stderr = await sh(
    `tar cf - -C '${dir}' . | cat >/dev/null`,
    TAR_TIMEOUT_MS,
    (code, lines) => code === 1 && lines.every((l) => CHANGED.test(l)),
  );
  const seconds = (nowMs() - t) / 1000;
  const got = treeDigest(dir);
  if (got.digest !== expected) throw new Error(`${who} read wrong content (${got.files} files, digest ${got.digest})`);
  return { seconds, changed: stderr.length };
}

export const scenario12: Scenario = {
  id: 12,
  title: "a real workload: tar of a released node_modules tree, caches dropped",
  async run(ctx) {
    const server = await ctx.swift();
    const fs = await ctx.ext4(1024);
    const tree = join(fs.dir, "tree");
    const resident = join(fs.dir, "resident");
    const warmPath = join(fs.dir, "warm.bin");
    await mkdir(tree);
    const packages = pickPackages();
    const quoted = packages.map((p) => `'${join(NODE_MODULES, p)}'`).join(" ");
    let t = nowMs();
    await sh(
      `cp -a ${quoted} '${tree}/'; find '${tree}' -type l -delete; find '${tree}' -mindepth 1 -type d -empty -delete; ` +
        `cp -a '${tree}' '${resident}'`,
      SETUP_TIMEOUT_MS,
    );
    writeRandomFile(warmPath, 64 * 1024);
    const original = treeDigest(tree);
    const files = regularFiles(tree).map((f) => join(tree, f));
    const what = `${original.files} files, ${(original.bytes / 2 ** 20).toFixed(1)} MiB`;
    ctx.log(`s12 tree: ${what} from ${packages.join(", ")} (${((nowMs() - t) / 1000).toFixed(1)} s)`);
    t = nowMs();
    const objects = await ctx.bucket("tree-objects");
    await uploadTree(server, objects, tree);
    ctx.log(`s12 tree uploaded with rclone copy in ${((nowMs() - t) / 1000).toFixed(1)} s`);
    t = nowMs();
    const bucket = await ctx.bucket("tree");
    await ctx.withFanrecall(fs.dir, bucket, [], (fr) =>
      adminOp(fr, "release", [warmPath, ...files], SETUP_TIMEOUT_MS, RELEASE_WORKERS),
    );
    const saved = files.map(saveStub);
    const warm = saveStub(warmPath);
    ctx.log(`s12 tree archived and released in ${((nowMs() - t) / 1000).toFixed(1)} s`);
    const changed: Record<string, number[]> = { fanrecall: [], rclone: [], resident: [] };
    const timed = async (who: string, dir: string): Promise<number> => {
      const r = await tarRead(who, dir, original.digest);
      changed[who].push(r.changed);
      return r.seconds;
    };
    const outcome = await runContest(ctx, {
      scenario: 12,
      metric: `tar cf - | cat of ${what}, cold`,
      unit: "s",
      reps: { full: 3, quick: 1 },
      fanrecall: () => ctx.withStubs(fs.dir, bucket, saved, warm, [], () => timed("fanrecall", tree)),
      against: [
        {
          label: "rclone mount, first read",
          target: { max: 1.0 },
          measure: () => withPeer("rclone", server, objects, (m) => timed("rclone", m.dir)),
        },
        { label: "resident tree", measure: () => timed("resident", resident) },
      ],
    });
    return {
      ...outcome,
      rows: outcome.rows.map((row) => ({
        ...row,
        note:
          `${ANCHOR}; tar's "file changed as we read it" per read: fanrecall ${changed.fanrecall.join("/")}, ` +
          `rclone ${changed.rclone.join("/")}, resident ${changed.resident.join("/")}`,
      })),
      details: { files: original.files, bytes: original.bytes, packages, tarFileChanged: changed },
    };
  },
};
