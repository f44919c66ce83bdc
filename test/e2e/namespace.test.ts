// Nothing lost when the disk is: against Swift and s3rver, a tree of files in nested
// directories with different owners, modes and times is archived and released; one file is
// deleted, one renamed, one rewritten (and archived again); reconcile writes a snapshot; the
// filesystem is destroyed (unmount, mkfs, mount) and rebuilt from the store: every remaining
// file is back at its current path with its size, owner, group, mode and times, and reads
// back right as its unprivileged owner; the deleted one is not. undelete brings it back;
// deleted again, `reconcile --retain 0` removes every object nothing refers to (and nothing
// else: a file archived after the last snapshot keeps its object) and undelete of it then
// fails with reason "gone". A second watched directory (another namespace) in the same bucket
// is untouched throughout: its objects stay byte for byte and its stub reads back right.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  readdirSync,
  mkdirSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { after, before, describe } from "node:test";
import { YOUNG_MS } from "../../cli/reconcile-command.js";
import { runAsUid } from "../helpers/child.js";
import { startFanrecall } from "../helpers/fanrecall-instance.js";
import type { FanrecallInstance } from "../helpers/fanrecall-instance.js";
import { makeExt4, remakeLoopFs } from "../helpers/loop-fs.js";
import type { Ext4 } from "../helpers/loop-fs.js";
import { makeBucket, s3Client, sharedSwift, startS3rver } from "../helpers/object-server.js";
import type { ObjectServer } from "../helpers/object-server.js";
import { rootTest } from "../helpers/root.js";

interface TreeFile {
  readonly rel: string;
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
  readonly mtime: Date;
  readonly atime: Date;
  data: Buffer;
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

function treeFiles(): TreeFile[] {
  const t = (y: number) => new Date(Date.UTC(y, 4, 17, 12, 30, 15));
  const f = (rel: string, size: number, uid: number, mode: number, year: number): TreeFile => ({
    rel,
    uid,
    gid: uid + 1,
    mode,
    mtime: t(year),
    atime: t(year + 1),
    data: randomBytes(size),
  });
  return [
    f("videos/2019/beach.mp4", 3 * 1024 * 1024 + 17, 1234, 0o640, 2019),
    f("videos/2019/deleted.mp4", 200_000, 1234, 0o600, 2019),
    f("videos/2020/move-me.mp4", 700_000, 1235, 0o644, 2020),
    f("docs/report.pdf", 90_001, 1236, 0o664, 2018),
    f("docs/old/rewrite.txt", 50_000, 1236, 0o640, 2017),
    f("top.bin", 4096, 0, 0o644, 2016),
  ];
}

function writeTree(root: string, files: readonly TreeFile[]): void {
  for (const file of files) {
    const path = join(root, file.rel);
    mkdirSync(join(path, ".."), { recursive: true });
    writeFileSync(path, file.data, { mode: file.mode });
    chownSync(path, file.uid, file.gid);
    chmodSync(path, file.mode);
    utimesSync(path, file.atime, file.mtime);
  }
}

/** Reads `rel` as its owner (not root) and checks every attribute and byte. */
async function assertFile(root: string, file: TreeFile): Promise<void> {
  const path = join(root, file.rel);
  const st = statSync(path);
  assert.equal(st.size, file.data.length, `${file.rel} size`);
  assert.equal(st.uid, file.uid, `${file.rel} owner`);
  assert.equal(st.gid, file.gid, `${file.rel} group`);
  assert.equal(st.mode & 0o7777, file.mode, `${file.rel} mode`);
  assert.equal(st.mtimeMs, file.mtime.getTime(), `${file.rel} mtime`);
  // As its owner; root's files (0644) as another unprivileged user.
  const r = await runAsUid(file.uid === 0 ? 1299 : file.uid, ["sha256sum", path], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `${file.rel}: ${r.stderr}`);
  assert.equal(r.stdout.toString().split(" ")[0], sha(file.data), `${file.rel} content`);
}

interface Listed {
  readonly name: string;
  readonly etag: string;
}

async function listAll(server: ObjectServer, bucket: string, prefix: string): Promise<Listed[]> {
  const out: Listed[] = [];
  const stream = s3Client(server).listObjectsV2(bucket, prefix, true);
  for await (const o of stream as AsyncIterable<{ name?: string; etag?: string }>) {
    if (o.name) out.push({ name: o.name, etag: o.etag ?? "" });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : 1));
}

function jsonLines(out: Buffer): Array<Record<string, unknown>> {
  return out
    .toString()
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

// Both stores at once (their own disks, buckets and instances): the minute that reconcile
// waits before an object may be deleted then passes once.
describe("the namespace in the store", { concurrency: true }, () => {
  for (const kind of ["swift", "s3rver"] as const) {
    describe(`the namespace in the store (${kind})`, { timeout: 900_000 }, () => {
      let server: ObjectServer;
      let disk: Ext4;
      let other: Ext4;
      let fr: FanrecallInstance | null = null;
      const bucket = `ns-${kind}`;

      const start = async () => {
        fr = await startFanrecall({ watch: [disk.dir, other.dir], server, bucket });
        return fr;
      };
      const stop = async () => {
        await fr?.stop();
        fr = null;
      };

      before(async () => {
        server = kind === "swift" ? await sharedSwift() : await startS3rver();
        await makeBucket(server, bucket);
        disk = await makeExt4(256);
        other = await makeExt4(64);
      });
      after(async () => {
        await stop();
        await disk?.cleanup();
        await other?.cleanup();
        if (kind === "s3rver") await server?.stop();
      });

      rootTest(
        "rebuild, undelete and reconcile after the disk is lost",
        async () => {
          const files = treeFiles();
          writeTree(disk.dir, files);
          const neighbour: TreeFile = {
            rel: "theirs.bin",
            uid: 1240,
            gid: 1240,
            mode: 0o600,
            mtime: new Date(Date.UTC(2015, 1, 1)),
            atime: new Date(Date.UTC(2015, 1, 2)),
            data: randomBytes(300_000),
          };
          writeTree(other.dir, [neighbour]);
          let f = await start();
          for (const dir of [disk.dir, other.dir]) {
            const r = await f.cli(["release", dir]);
            assert.equal(r.code, 0, r.stderr);
          }
          const neighbourObjects = await listAll(server, bucket, "");
          const mine = (await f.status([disk.dir])).map((s) => s.object?.key ?? "");
          const theirs = (await f.status([other.dir])).map((s) => s.object?.key ?? "");
          const ns = mine[0].split("/")[1];
          const otherNs = theirs[0].split("/")[1];
          assert.notEqual(ns, otherNs, "two watches, two namespaces");
          for (const k of mine) assert.match(k, new RegExp(`^fanrecall/${ns}/objects/`));
          const otherBefore = neighbourObjects.filter((o) => o.name.startsWith(`fanrecall/${otherNs}/`));
          assert.ok(otherBefore.length >= 3, "the other namespace has its object, manifest and record");

          // Changes since the archive: a deletion, a rename, a rewrite (archived again).
          const byRel = new Map(files.map((x) => [x.rel, x]));
          const deleted = byRel.get("videos/2019/deleted.mp4")!;
          rmSync(join(disk.dir, deleted.rel));
          renameSync(join(disk.dir, "videos/2020/move-me.mp4"), join(disk.dir, "docs/moved.mp4"));
          const moved = { ...byRel.get("videos/2020/move-me.mp4")!, rel: "docs/moved.mp4" };
          const rewritten = byRel.get("docs/old/rewrite.txt")!;
          rewritten.data = randomBytes(60_000);
          writeFileSync(join(disk.dir, rewritten.rel), rewritten.data);
          utimesSync(join(disk.dir, rewritten.rel), rewritten.atime, rewritten.mtime);
          const rearchive = await f.cli(["archive", join(disk.dir, rewritten.rel)]);
          assert.equal(rearchive.code, 0, rearchive.stderr);

          const reconcile = await f.cli(["reconcile", "--json", disk.dir]);
          assert.equal(reconcile.code, 0, reconcile.stderr);
          const summary = jsonLines(reconcile.stdout).at(-1)!;
          assert.equal(summary.files, 5, JSON.stringify(summary));
          assert.equal(summary.deleted, 0, "nothing is deleted within the retention");

          // The disk is lost.
          await stop();
          await remakeLoopFs(disk);
          f = await start();
          // On the new disk a user owns docs/ and has planted docs/old as a symlink to a directory
          // of theirs outside: the rebuild must not follow it (that file fails, nothing lands there).
          const outside = join(other.dir, "outside");
          mkdirSync(outside);
          chownSync(outside, 1236, 1237);
          mkdirSync(join(disk.dir, "docs"));
          chownSync(join(disk.dir, "docs"), 1236, 1237);
          const plant = await runAsUid(1236, ["ln", "-s", outside, join(disk.dir, "docs/old")]);
          assert.equal(plant.code, 0, plant.stderr);
          const planted = await f.cli(["rebuild", "--json", disk.dir]);
          assert.equal(planted.code, 1, "a file that could not be placed makes the rebuild fail");
          const failed = jsonLines(planted.stdout).filter((l) => l.action === "failed");
          assert.deepEqual(
            failed.map((l) => [l.path, l.reason]),
            [[join(disk.dir, "docs/old/rewrite.txt"), "invalid-path"]],
          );
          assert.deepEqual(readdirSync(outside), [], "nothing was created through the symlink");
          rmSync(join(disk.dir, "docs/old"));
          for (const placed of jsonLines(planted.stdout).filter((l) => l.action === "created"))
            rmSync(String(placed.path));
          const dry = await f.cli(["rebuild", "--dry-run", "--json", disk.dir]);
          assert.equal(dry.code, 0, dry.stderr);
          assert.equal(jsonLines(dry.stdout).filter((l) => l.action === "created").length, 5);
          const rebuild = await f.cli(["rebuild", "--json", disk.dir]);
          assert.equal(rebuild.code, 0, rebuild.stderr);
          const lines = jsonLines(rebuild.stdout);
          assert.deepEqual(lines.at(-1), {
            summary: true,
            namespace: ns,
            dryRun: false,
            created: 5,
            skipped: 0,
            failed: 0,
          });
          const expected = [
            byRel.get("videos/2019/beach.mp4")!,
            moved,
            byRel.get("docs/report.pdf")!,
            rewritten,
            byRel.get("top.bin")!,
          ];
          for (const file of expected) {
            const st = (await f.status([join(disk.dir, file.rel)]))[0];
            assert.equal(st.state, "released", `${file.rel} comes back as a released stub`);
            await assertFile(disk.dir, file);
          }
          assert.throws(() => statSync(join(disk.dir, deleted.rel)), /ENOENT/, "the deleted file stays deleted");
          assert.throws(
            () => statSync(join(disk.dir, "videos/2020/move-me.mp4")),
            /ENOENT/,
            "the moved file is at its new path only",
          );
          const again = await f.cli(["rebuild", "--json", disk.dir]);
          assert.equal(jsonLines(again.stdout).at(-1)?.skipped, 5, "a second rebuild overwrites nothing");

          // Undelete, then delete it for good.
          const undelete = await f.cli(["undelete", join(disk.dir, deleted.rel)]);
          assert.equal(undelete.code, 0, undelete.stderr);
          await assertFile(disk.dir, deleted);
          rmSync(join(disk.dir, deleted.rel));
          // Archived after the last snapshot: its object must survive a reconcile that deletes at once.
          const late: TreeFile = { ...byRel.get("top.bin")!, rel: "late.bin", data: randomBytes(10_000) };
          writeTree(disk.dir, [late]);
          assert.equal((await f.cli(["archive", join(disk.dir, late.rel)])).code, 0);
          // Objects younger than YOUNG_MS are never deleted; wait so that only references protect them.
          await new Promise((r) => setTimeout(r, YOUNG_MS + 2_000));
          const purge = await f.cli(["reconcile", "--retain", "0", "--json", disk.dir]);
          assert.equal(purge.code, 0, purge.stderr);
          const keys = (await f.status([disk.dir])).map((s) => s.object?.key ?? "");
          const left = (await listAll(server, bucket, `fanrecall/${ns}/objects/`)).map((o) => o.name);
          const data = left.filter((n) => !n.endsWith(".fanrecall-manifest.json"));
          assert.deepEqual(data.sort(), keys.filter(Boolean).sort(), "exactly the referenced objects are left");
          const gone = await f.cli(["undelete", "--json", join(disk.dir, deleted.rel)]);
          assert.equal(gone.code, 1);
          assert.equal(jsonLines(gone.stdout)[0].reason, "gone");
          for (const file of [...expected, late]) await assertFile(disk.dir, file);

          // The other namespace: untouched, and its stub still reads back right.
          const otherAfter = (await listAll(server, bucket, `fanrecall/${otherNs}/`)).filter(
            (o) => !o.name.includes("/snapshots/"),
          );
          assert.deepEqual(
            otherAfter,
            otherBefore.filter((o) => !o.name.includes("/snapshots/")),
          );
          await assertFile(other.dir, neighbour);
        },
        { timeout: 900_000 },
      );
    });
  }
});
