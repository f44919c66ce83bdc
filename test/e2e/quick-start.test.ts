// The README's quick start: `fanrecall start` with no S3 endpoint configured runs the
// embedded s3rver; archive, release, read back as another user, status; the admin commands
// find it by path (no --run-dir) though --state-dir moved its sockets.
import { after, before, describe } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isRoot, rootTest } from "../helpers/root.js";
import { runAsNobody } from "../helpers/child.js";
import { makeExt4 } from "../helpers/loop-fs.js";
import type { Ext4 } from "../helpers/loop-fs.js";
import { INSTANCES_DIR } from "../../ipc/run-dir.js";
import { startFanrecall } from "../helpers/fanrecall-instance.js";
import type { FanrecallInstance } from "../helpers/fanrecall-instance.js";

describe("quick start on the embedded s3rver", () => {
  let fs: Ext4;
  let fr: FanrecallInstance;

  before(
    async () => {
      if (!isRoot()) return;
      fs = await makeExt4(256);
      fr = await startFanrecall({ watch: [fs.dir] });
      assert.match(fr.output(), /embedded-s3: demo object store/);
    },
    { timeout: 60_000 },
  );

  after(
    async () => {
      if (!isRoot()) return;
      const code = await fr?.stop();
      assert.equal(code, 0, "fanrecall start exits 0 on SIGTERM");
      // stop() removes the registry's directory when it made it and it is empty again.
      const records = existsSync(INSTANCES_DIR) ? readdirSync(INSTANCES_DIR) : [];
      const left = records.filter((n) =>
        readFileSync(join(INSTANCES_DIR, n), "utf8").includes(JSON.stringify(fr.runDir)),
      );
      assert.deepEqual(left, [], "its instance record is removed when it stops");
      await fs?.cleanup();
    },
    { timeout: 60_000 },
  );

  rootTest(
    "archive, release, read back, status",
    async () => {
      const path = join(fs.dir, "notes.txt");
      const data = randomBytes(3 * 1024 * 1024 + 17);
      writeFileSync(path, data);
      chmodSync(path, 0o644);
      const a = await fr.cli(["archive", path]);
      assert.equal(a.code, 0, a.stderr);
      assert.equal((await fr.status([path]))[0].state, "archived");
      const r = await fr.cli(["release", path]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(statSync(path).blocks * 512 <= 8192, "data blocks freed (an xattr block may remain)");
      const s = (await fr.status([path]))[0];
      assert.deepEqual([s.state, s.size, s.populatedBytes], ["released", data.length, 0]);
      const cat = await runAsNobody(["cat", path]);
      assert.equal(cat.code, 0, cat.stderr);
      assert.equal(
        createHash("sha256").update(cat.stdout).digest("hex"),
        createHash("sha256").update(data).digest("hex"),
      );
      assert.equal((await fr.status([path]))[0].state, "archived");
    },
    { timeout: 60_000 },
  );

  rootTest("a directory swapped for a symlink mid-path cannot redirect release to another file", async () => {
    // A user's directory holds their file; a root-only file of the same name lies elsewhere.
    const mine = join(fs.dir, "user-dir");
    const secret = join(fs.dir, "root-only");
    mkdirSync(mine);
    mkdirSync(secret, { mode: 0o700 });
    writeFileSync(join(mine, "f.bin"), randomBytes(64 * 1024));
    writeFileSync(join(secret, "f.bin"), randomBytes(64 * 1024), { mode: 0o600 });
    // The swap: the user's directory becomes a symlink to the root-only one.
    renameSync(mine, `${mine}.old`);
    symlinkSync(secret, mine);
    const r = await fr.cli(["release", join(mine, "f.bin")]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /symlink is on the way/);
    assert.equal((await fr.status([join(secret, "f.bin")]))[0].state, "resident", "the root-only file was left alone");
    // Control: the same path without the symlink is released (so the refusal above is the symlink's).
    rmSync(mine);
    renameSync(`${mine}.old`, mine);
    const ok = await fr.cli(["release", join(mine, "f.bin")]);
    assert.equal(ok.code, 0, ok.stderr);
  });

  rootTest(
    "admin commands find the instance by path, without --run-dir, though its sockets are in STATE_DIR/run",
    async () => {
      assert.equal(fr.runDir, join(fr.stateDir, "run"), "started with --state-dir: sockets moved");
      const records = readdirSync(INSTANCES_DIR).map((n) => readFileSync(join(INSTANCES_DIR, n), "utf8"));
      assert.equal(records.filter((r) => r.includes(JSON.stringify(fr.runDir))).length, 1, "one record for it");
      const path = join(fs.dir, "by-path.bin");
      const data = randomBytes(1024 * 1024 + 5);
      writeFileSync(path, data, { mode: 0o644 });
      for (const op of ["archive", "release"]) {
        const r = await fr.cliByPath([op, path]);
        assert.equal(r.code, 0, `${op}: ${r.stderr}`);
      }
      const s = await fr.cliByPath(["status", "--json", path]);
      assert.equal(s.code, 0, s.stderr);
      assert.equal(s.stderr, "", "status reached the listener and the recall service");
      assert.equal((JSON.parse(s.stdout.toString()) as { state: string }).state, "released");
      const cat = await runAsNobody(["cat", path]);
      assert.ok(cat.stdout.equals(data), "read back through the stub");
      // A path no running instance watches: one line saying what to do, nothing done.
      const outside = await fr.cliByPath(["release", join(fs.dir, "..", "not-watched")]);
      assert.notEqual(outside.code, 0);
      assert.equal(outside.stderr.trim().split("\n").length, 1, outside.stderr);
      assert.match(outside.stderr, /no running fanrecall watches|not beneath a directory the listener watches/);
    },
    { timeout: 60_000 },
  );

  rootTest("admin commands fail clearly on a missing path and exit non-zero", async () => {
    const r = await fr.cli(["release", join(fs.dir, "nope")]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /nope: .*ENOENT/);
  });
});
