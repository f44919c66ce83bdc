// End to end, range mode: a real `fanrecall start` on a loop filesystem of each kind the
// README names (ext4, xfs, btrfs), Swift with s3api on 127.0.0.1, files archived and
// released, then read back by real programs running as uid 65534 or 1234 (cat, dd, cp,
// python mmap, sqlite3, unzip, an executable), also from another mount namespace and
// through read-only bind mounts.
import { after, before, describe } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  readFileSync,
  statSync,
  writeFileSync,
  openSync,
  writeSync,
  closeSync,
  readdirSync,
  rmSync,
} from "node:fs";
import { join } from "node:path";
import { rootTest, isRoot } from "../helpers/root.js";
import { makeLoopFs, makeScratchDir } from "../helpers/loop-fs.js";
import type { LoopFs, LoopFsType } from "../helpers/loop-fs.js";
import { startSwift } from "../helpers/object-server.js";
import type { ObjectServer } from "../helpers/object-server.js";
import { startFanrecall } from "../helpers/fanrecall-instance.js";
import type { FanrecallInstance } from "../helpers/fanrecall-instance.js";
import { OTHER_UID, runAsNobody, runAsUid, runChild, setprivAs } from "../helpers/child.js";
import { Teardown } from "../helpers/teardown.js";

const MiB = 1024 * 1024;

function writeRandom(path: string, size: number): string {
  const fd = openSync(path, "w", 0o644);
  const hash = createHash("sha256");
  for (let off = 0; off < size; off += 8 * MiB) {
    const b = randomBytes(Math.min(8 * MiB, size - off));
    hash.update(b);
    writeSync(fd, b);
  }
  closeSync(fd);
  chmodSync(path, 0o644);
  return hash.digest("hex");
}

function sha256(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

async function nobodySha(path: string, timeoutMs = 120_000): Promise<string> {
  const r = await runAsNobody(["sha256sum", path], { timeoutMs });
  assert.equal(r.code, 0, `sha256sum ${path} failed: ${r.stderr}`);
  return r.stdout.toString().split(" ")[0];
}

function allocatedBytes(path: string): number {
  return statSync(path).blocks * 512;
}

/**
 * One filesystem the suite runs on. Every case runs on each; the big files are smaller on
 * xfs and btrfs (the cases are the same, only the bytes pushed through Swift shrink), which
 * keeps the whole file near 2.5 min instead of 4.
 */
type FsCase = { type: LoopFsType; imageMiB: number; midSize: number; bigSize: number };

const FILESYSTEMS: readonly FsCase[] = [
  { type: "ext4", imageMiB: 1024, midSize: 64 * MiB, bigSize: 256 * MiB + 12345 },
  { type: "xfs", imageMiB: 512, midSize: 16 * MiB, bigSize: 64 * MiB + 12345 },
  { type: "btrfs", imageMiB: 512, midSize: 16 * MiB, bigSize: 64 * MiB + 12345 },
];

/** Checks, inside a mount namespace, that the mount at "$2" is read-only (exit 3 if not). */
const RO_CHECK =
  'o=$(findmnt -n -o VFS-OPTIONS --mountpoint "$2") && case ",$o," in *,ro,*) ;; *) echo "$2 is not read-only: $o" >&2; exit 3 ;; esac';

describe(
  "range-mode recall end to end (Swift s3api)",
  { skip: !isRoot() && process.env.CI !== "true" ? "needs root" : false },
  () => {
    const teardown = new Teardown();
    let swift: ObjectServer;

    before(
      async () => {
        if (!isRoot()) return;
        swift = await startSwift();
        teardown.add(() => swift.stop());
      },
      { timeout: 180_000 },
    );

    after(() => teardown.run(), { timeout: 60_000 });

    for (const c of FILESYSTEMS) {
      describe(`on ${c.type}`, () => recallCases(c, () => swift));
    }
  },
);

/** The suite on one filesystem: its own loop image, bucket and `fanrecall start`. */
function recallCases(c: FsCase, server: () => ObjectServer): void {
  const teardown = new Teardown();
  let fs: LoopFs;
  let swift: ObjectServer;
  let fr: FanrecallInstance;
  const files: Record<string, { path: string; sha: string; size: number }> = {};

  /**
   * A fresh empty directory outside the watched filesystem that uid 1234 can traverse; the
   * mount point of bind mounts in other namespaces (removal refuses one that leaked into ours).
   */
  function scratchDir(name: string): string {
    const scratch = makeScratchDir(`fanrecall-e2e-${c.type}-${name}-`, 0o755);
    teardown.add(() => scratch.cleanup());
    return scratch.dir;
  }

  /** A new world-readable file of random bytes on the filesystem, released; checked to be a stub. */
  async function releasedFile(name: string, size: number): Promise<{ path: string; data: Buffer }> {
    const path = join(fs.dir, name);
    const data = randomBytes(size);
    writeFileSync(path, data, { mode: 0o644 });
    chmodSync(path, 0o644);
    const r = await fr.cli(["release", path]);
    assert.equal(r.code, 0, r.stderr + fr.output().slice(-3000));
    const [s] = await fr.status([path]);
    assert.equal(s.state, "released", `${name} is a stub before the read`);
    assert.equal(s.populatedBytes, 0, `${name} has nothing populated before the read`);
    assert.ok(allocatedBytes(path) <= 8192, `${name}: ${allocatedBytes(path)} bytes allocated after release`);
    return { path, data };
  }

  before(
    async () => {
      if (!isRoot()) return;
      swift = server();
      fs = await makeLoopFs(c.type, c.imageMiB);
      teardown.add(() => fs.cleanup());
      for (const [name, size] of [
        ["empty", 0],
        ["one", 1],
        ["page", 4096],
        ["mid", c.midSize],
        ["big", c.bigSize],
      ] as const) {
        const path = join(fs.dir, `${name}.bin`);
        files[name] = { path, sha: writeRandom(path, size), size };
      }
      fr = await startFanrecall({
        watch: [fs.dir],
        server: swift,
        bucket: `fanrecall-e2e-${c.type}`,
        extraArgs: ["--chunk-size", String(MiB)],
      });
      teardown.add(async () => {
        const code = await fr.stop();
        if (code !== 0) process.stderr.write(fr.output().slice(-4000));
      });
    },
    { timeout: 180_000 },
  );

  after(() => teardown.run(), { timeout: 60_000 });

  rootTest(
    "archive then release keeps size, owner, mode and mtime, frees the blocks, and needs no recall to stat",
    async () => {
      const before = Object.fromEntries(Object.entries(files).map(([k, f]) => [k, statSync(f.path)]));
      const a = await fr.cli(["archive", fs.dir]);
      assert.equal(a.code, 0, a.stderr + fr.output().slice(-3000));
      const r = await fr.cli(["release", fs.dir]);
      assert.equal(r.code, 0, r.stderr + fr.output().slice(-3000));
      for (const [k, f] of Object.entries(files)) {
        const st = statSync(f.path);
        const was = before[k];
        assert.equal(st.size, was.size, `${k} size`);
        assert.equal(st.mode, was.mode, `${k} mode`);
        assert.equal(st.uid, was.uid, `${k} uid`);
        assert.equal(st.mtimeMs, was.mtimeMs, `${k} mtime`);
        assert.ok(st.blocks * 512 <= 8192, `${k}: ${st.blocks} blocks after release`);
      }
      const ls = await runAsNobody(["ls", "-l", fs.dir]);
      assert.equal(ls.code, 0);
      const status = await fr.status([fs.dir]);
      for (const s of status.filter((x) => x.path.endsWith(".bin"))) {
        assert.equal(s.state, "released", `${s.path} state`);
        assert.equal(s.populatedBytes, 0, `${s.path}: ls/stat recalled something`);
        assert.ok(s.object?.key, "object reference");
      }
      const du = await runChild(["du", "-sk", files.big.path]);
      assert.match(du.stdout.toString(), /^[0-8]\s/);
    },
    { timeout: 180_000 },
  );

  rootTest(
    `the last 64 KiB of a released ${Math.round(c.bigSize / MiB)} MiB file are read right and leave well under 10% allocated`,
    async () => {
      const f = files.big;
      const skip = Math.floor((f.size - 65536) / 4096);
      const r = await runAsNobody(["dd", `if=${f.path}`, "bs=4096", `skip=${skip}`, "status=none"]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.length > 0 && r.stdout.length <= 65536 + 4096);
      assert.ok(allocatedBytes(f.path) < f.size / 10, `allocated ${allocatedBytes(f.path)} of ${f.size}`);
      const [st] = await fr.status([f.path]);
      assert.equal(st.state, "partial");
    },
    { timeout: 60_000 },
  );

  rootTest(
    "cat, cp and python mmap of released files give the original bytes",
    async () => {
      for (const name of ["empty", "one", "page", "mid", "big"]) {
        const f = files[name];
        assert.equal(await nobodySha(f.path), f.sha, `${name} via sha256sum (cat-like read)`);
      }
      const copy = join(scratchDir("cp"), "copy.bin");
      const cp = await runChild(["cp", files.mid.path, copy]);
      assert.equal(cp.code, 0, cp.stderr);
      assert.equal(sha256(readFileSync(copy)), files.mid.sha);
      rmSync(copy);
      const states = await fr.status([files.mid.path, files.big.path]);
      for (const s of states) assert.equal(s.state, "archived", `${s.path} fully recalled → archived`);
    },
    { timeout: 240_000 },
  );

  rootTest(
    "python mmap and dd with skip read a freshly released file right",
    async () => {
      const path = join(fs.dir, "mapped.bin");
      const sha = writeRandom(path, 16 * MiB + 100);
      assert.equal((await fr.cli(["release", path])).code, 0);
      const py =
        "import mmap,hashlib,sys\nf=open(sys.argv[1],'rb')\nm=mmap.mmap(f.fileno(),0,access=mmap.ACCESS_READ)\nprint(hashlib.sha256(m[:]).hexdigest())";
      const r = await runAsNobody(["/usr/bin/python3", "-c", py, path]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString().trim(), sha);
      const path2 = join(fs.dir, "skipped.bin");
      const data = randomBytes(8 * MiB);
      writeFileSync(path2, data, { mode: 0o644 });
      assert.equal((await fr.cli(["release", path2])).code, 0);
      const dd = await runAsNobody(["dd", `if=${path2}`, "bs=4096", "skip=1000", "count=3", "status=none"]);
      assert.equal(dd.code, 0, dd.stderr);
      assert.ok(dd.stdout.equals(data.subarray(1000 * 4096, 1003 * 4096)));
    },
    { timeout: 120_000 },
  );

  rootTest(
    "sqlite3 queries a released database, unzip lists a released zip, a released executable runs",
    async () => {
      const db = join(fs.dir, "app.db");
      const mk = await runChild(["sqlite3", db, "create table t(x); insert into t values (41),(1);"]);
      assert.equal(mk.code, 0, mk.stderr);
      chmodSync(db, 0o644);
      const zipPath = join(fs.dir, "docs.zip");
      const zip = await runChild(["zip", "-j", "-q", zipPath, files.page.path]);
      assert.equal(zip.code, 0, zip.stderr);
      chmodSync(zipPath, 0o644);
      const exe = join(fs.dir, "mytrue");
      copyFileSync("/usr/bin/echo", exe);
      chmodSync(exe, 0o755);
      assert.equal((await fr.cli(["release", db, zipPath, exe])).code, 0);
      for (const p of [db, zipPath, exe]) assert.ok(statSync(p).blocks * 512 <= 8192, `${p} released`);
      const q = await runAsNobody(["sqlite3", "-readonly", db, "select sum(x) from t;"]);
      assert.equal(q.code, 0, q.stderr);
      assert.equal(q.stdout.toString().trim(), "42");
      const l = await runAsNobody(["unzip", "-l", zipPath]);
      assert.equal(l.code, 0, l.stderr);
      assert.match(l.stdout.toString(), /page\.bin/);
      const e = await runAsNobody([exe, "hello from a stub"]);
      assert.equal(e.code, 0, e.stderr);
      assert.equal(e.stdout.toString(), "hello from a stub\n");
    },
    { timeout: 120_000 },
  );

  rootTest(
    "concurrent readers of one stub fetch each byte from the store once",
    async () => {
      const path = join(fs.dir, "shared.bin");
      const size = 32 * MiB;
      const sha = writeRandom(path, size);
      assert.equal((await fr.cli(["release", path])).code, 0);
      const [st] = await fr.status([path]);
      const key = st.object!.key;
      const logFile = join(swift.dir, "logs", "proxy.log");
      const before = dataGets(logFile, key);
      const results = await Promise.all(Array.from({ length: 8 }, () => nobodySha(path)));
      for (const r of results) assert.equal(r, sha);
      const after = dataGets(logFile, key);
      const gets = after.count - before.count;
      const bytes = after.bytes - before.bytes;
      assert.equal(bytes, size, `${bytes} bytes sent by the store for a ${size}-byte file`);
      // 1 MiB chunks here: at most one GET per chunk (readahead joins neighbours into one GET).
      assert.ok(gets >= 2 && gets <= 32, `${gets} ranged GETs for 32 chunks`);
    },
    { timeout: 120_000 },
  );

  rootTest(
    "writes, appends and truncates of a partly recalled stub keep the user's bytes and the original ones",
    async () => {
      const path = join(fs.dir, "edit.bin");
      const orig = randomBytes(12 * MiB);
      writeFileSync(path, orig, { mode: 0o666 });
      chmodSync(path, 0o666);
      assert.equal((await fr.cli(["release", path])).code, 0);
      const head = await runAsNobody(["dd", `if=${path}`, "bs=4096", "count=1", "status=none"]);
      assert.ok(head.stdout.equals(orig.subarray(0, 4096)));
      const patch = Buffer.from("USER-WRITTEN-BYTES");
      const w = await runAsNobody([
        "sh",
        "-c",
        `printf ${patch.toString()} | dd of=${path} bs=1 seek=${5 * MiB + 7} conv=notrunc status=none`,
      ]);
      assert.equal(w.code, 0, w.stderr);
      const expected = Buffer.from(orig);
      patch.copy(expected, 5 * MiB + 7);
      const app = await runAsNobody(["sh", "-c", `printf APPENDED >> ${path}`]);
      assert.equal(app.code, 0, app.stderr);
      const full = Buffer.concat([expected, Buffer.from("APPENDED")]);
      assert.equal(sha256(readFileSync(path)), sha256(full));
      const tr = await runAsNobody(["truncate", "-s", String(3 * MiB + 5), path]);
      assert.equal(tr.code, 0, tr.stderr);
      assert.ok(readFileSync(path).equals(full.subarray(0, 3 * MiB + 5)));
      const [s] = await fr.status([path]);
      assert.equal(s.state, "dirty");
    },
    { timeout: 120_000 },
  );

  rootTest(
    "O_TRUNC of a released file followed by a sparse write never brings old data back",
    async () => {
      const path = join(fs.dir, "trunc.bin");
      writeFileSync(path, randomBytes(4 * MiB), { mode: 0o666 });
      chmodSync(path, 0o666);
      assert.equal((await fr.cli(["release", path])).code, 0);
      const py =
        "import os,sys\nfd=os.open(sys.argv[1],os.O_WRONLY|os.O_TRUNC)\nos.pwrite(fd,b'NEW',1048576)\nos.close(fd)";
      const r = await runAsNobody(["/usr/bin/python3", "-c", py, path]);
      assert.equal(r.code, 0, r.stderr);
      const after = readFileSync(path);
      assert.equal(after.length, 1048576 + 3);
      assert.ok(after.subarray(0, 1048576).equals(Buffer.alloc(1048576)), "old data came back");
      assert.equal(after.subarray(1048576).toString(), "NEW");
      const [s] = await fr.status([path]);
      assert.equal(s.state, "dirty");
    },
    { timeout: 60_000 },
  );

  rootTest(
    "restore recalls whole files ahead of use",
    async () => {
      const path = join(fs.dir, "restore.bin");
      const sha = writeRandom(path, 10 * MiB);
      assert.equal((await fr.cli(["release", path])).code, 0);
      assert.ok(statSync(path).blocks * 512 <= 8192, "data blocks freed (an xattr block may remain)");
      // Three admins restore it at once: each command's own access finds its own trigger.
      const all = await Promise.all([0, 1, 2].map(() => fr.cli(["restore", path])));
      for (const r of all) assert.equal(r.code, 0, r.stderr);
      assert.ok(allocatedBytes(path) >= 10 * MiB);
      const [s] = await fr.status([path]);
      assert.equal(s.state, "archived");
      assert.equal(s.populatedBytes, 10 * MiB);
      assert.equal(sha256(readFileSync(path)), sha);
      assert.ok(readdirSync(fs.dir).includes("restore.bin"));
    },
    { timeout: 60_000 },
  );

  rootTest(
    "python mmap at a non-zero offset, as uid 1234, maps the original bytes of that range and recalls only around it",
    async () => {
      const { path, data } = await releasedFile("mmap-offset.bin", 24 * MiB + 123);
      const offset = 8 * MiB + 64 * 1024; // page aligned, inside the ninth 1 MiB chunk
      const length = MiB;
      const py = [
        "import mmap,hashlib,sys",
        "f=open(sys.argv[1],'rb')",
        "m=mmap.mmap(f.fileno(),int(sys.argv[3]),access=mmap.ACCESS_READ,offset=int(sys.argv[2]))",
        "print(hashlib.sha256(m[:]).hexdigest())",
      ].join("\n");
      const r = await runAsUid(OTHER_UID, ["/usr/bin/python3", "-c", py, path, String(offset), String(length)], {
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 0, r.stderr + fr.output().slice(-3000));
      assert.equal(r.stdout.toString().trim(), sha256(data.subarray(offset, offset + length)));
      const [s] = await fr.status([path]);
      assert.equal(s.state, "partial", "a 1 MiB mapping recalls its range, not the whole file");
    },
    { timeout: 60_000 },
  );

  rootTest(
    "a reader in another mount namespace, through its own bind mount, reads the original bytes",
    async () => {
      const { data } = await releasedFile("other-ns.bin", 6 * MiB + 5);
      const dst = scratchDir("ns");
      const script = 'mount --bind "$1" "$2" && exec sha256sum "$2/$3"';
      const r = await runChild(["unshare", "-m", "sh", "-c", script, "sh", fs.dir, dst, "other-ns.bin"], {
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 0, r.stderr + fr.output().slice(-3000));
      assert.equal(r.stdout.toString().split(" ")[0], sha256(data));
      assert.deepEqual(readdirSync(dst), [], "the bind mount stayed in its own namespace");
    },
    { timeout: 60_000 },
  );

  // The last two: a listener that cannot serve a read-only mount may not survive them.
  rootTest(
    "uid 1234 reads the original bytes through a read-only bind mount root made in a new mount namespace",
    async () => {
      const { data } = await releasedFile("ro-bind.bin", 6 * MiB + 5);
      const dst = scratchDir("ro");
      const script = [
        'mount --bind "$1" "$2"',
        'mount -o remount,bind,ro "$2"',
        RO_CHECK,
        `exec ${setprivAs(OTHER_UID).join(" ")} sha256sum "$2/$3"`,
      ].join(" && ");
      const r = await runChild(["unshare", "-m", "sh", "-c", script, "sh", fs.dir, dst, "ro-bind.bin"], {
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 0, r.stderr + fr.output().slice(-3000));
      assert.equal(r.stdout.toString().split(" ")[0], sha256(data));
      assert.deepEqual(readdirSync(dst), [], "the bind mount stayed in its own namespace");
    },
    { timeout: 90_000 },
  );

  rootTest(
    "uid 1234 reads the original bytes through a read-only bind mount of its own (unshare -Urm)",
    async () => {
      const { data } = await releasedFile("userns-ro-bind.bin", 6 * MiB + 5);
      const dst = scratchDir("userns-ro");
      const script = [
        'mount --bind "$1" "$2"',
        'mount -o remount,bind,ro "$2"',
        RO_CHECK,
        'exec sha256sum "$2/$3"',
      ].join(" && ");
      const r = await runAsUid(
        OTHER_UID,
        ["unshare", "-Urm", "sh", "-c", script, "sh", fs.dir, dst, "userns-ro-bind.bin"],
        { timeoutMs: 60_000 },
      );
      assert.equal(r.code, 0, r.stderr + fr.output().slice(-3000));
      assert.equal(r.stdout.toString().split(" ")[0], sha256(data));
      assert.deepEqual(readdirSync(dst), [], "the bind mount stayed in its own namespace");
    },
    { timeout: 90_000 },
  );
}

/** Data GETs of `key` in Swift's proxy log (manifest GETs left out) and the bytes they sent. */
function dataGets(logFile: string, key: string): { count: number; bytes: number } {
  let text: string;
  try {
    text = readFileSync(logFile, "utf8");
  } catch {
    return { count: 0, bytes: 0 };
  }
  const lines = text.split("\n").filter((l) => l.includes(" GET ") && l.includes(key) && !l.includes("manifest"));
  // proxy_logging fields after the method: path protocol status referer user_agent
  // auth_token bytes_recvd bytes_sent ...
  const bytes = lines.reduce((sum, l) => {
    const t = l.split(" ");
    return sum + Number(t[t.indexOf("GET") + 8]);
  }, 0);
  return { count: lines.length, bytes };
}
