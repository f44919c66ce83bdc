// Root admin commands never follow a symlink and never leave the watched directory: a user who
// owns a directory inside the watch root swaps a directory for a symlink (before the command
// runs, and in a loop while a recursive command walks), and a root-only 0600 file outside the
// watched directory (on the same, watched filesystem) must never be archived, released,
// recalled or even reported on.
import { after, before, describe } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { chownSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as native from "../../native/index.js";
import { isRoot, rootTest } from "../helpers/root.js";
import { OTHER_UID, runAsUid, spawnChild, setprivAs } from "../helpers/child.js";
import { makeExt4 } from "../helpers/loop-fs.js";
import type { Ext4 } from "../helpers/loop-fs.js";
import { startFanrecall } from "../helpers/fanrecall-instance.js";
import type { FanrecallInstance } from "../helpers/fanrecall-instance.js";
import { Teardown } from "../helpers/teardown.js";

/** A size no user file here has, so a status line about the root file is recognisable. */
const SECRET_SIZE = 123_457;

interface Secret {
  readonly path: string;
  readonly sha: string;
  readonly mtimeMs: number;
}

function sha256(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

/** A root-owned 0700 directory holding root 0600 files `names`, outside the watched directory. */
function makeSecrets(dir: string, names: readonly string[]): Secret[] {
  mkdirSync(dir, { mode: 0o700 });
  return names.map((name) => {
    const path = join(dir, name);
    writeFileSync(path, randomBytes(SECRET_SIZE), { mode: 0o600 });
    return { path, sha: sha256(readFileSync(path)), mtimeMs: statSync(path).mtimeMs };
  });
}

function makeSecret(dir: string, name: string): Secret {
  return makeSecrets(dir, [name])[0];
}

function userNames(files: number): string[] {
  return ["f.bin", ...Array.from({ length: files }, (_, i) => `f${String(i).padStart(3, "0")}.bin`)];
}

function assertUntouched(s: Secret): void {
  assert.equal(native.getxattr(s.path, "trusted.fanrecall"), null, "the root file has no stub state");
  const st = statSync(s.path);
  assert.equal(st.size, SECRET_SIZE);
  assert.ok(st.blocks * 512 >= SECRET_SIZE, "the root file's blocks are still allocated");
  assert.equal(st.mtimeMs, s.mtimeMs);
  assert.equal(sha256(readFileSync(s.path)), s.sha, "the root file's content is unchanged");
}

/** A directory owned by OTHER_UID with user files of 8 KiB in `sub/` (f.bin and `files` more). */
function makeUserTree(dir: string, files: number): void {
  mkdirSync(join(dir, "sub"), { recursive: true });
  for (const p of [dir, join(dir, "sub")]) chownSync(p, OTHER_UID, OTHER_UID);
  for (const name of userNames(files)) {
    writeFileSync(join(dir, "sub", name), randomBytes(8192));
    chownSync(join(dir, "sub", name), OTHER_UID, OTHER_UID);
  }
}

/** As OTHER_UID: `dir/sub` becomes a symlink to `target` (the real directory kept as sub.old). */
async function swapForSymlink(dir: string, target: string): Promise<void> {
  const r = await runAsUid(OTHER_UID, ["sh", "-c", `mv sub sub.old && ln -s "$0" sub`, target], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
}

/** As OTHER_UID, until killed: `dir/sub` flips between the real directory and a symlink to `target`. */
function swapLoop(dir: string, target: string) {
  const src = `
    const fs = require("node:fs");
    process.chdir(${JSON.stringify(dir)});
    fs.symlinkSync(${JSON.stringify(target)}, "lnk");
    process.stdout.write("swapping\\n");
    for (;;) {
      fs.renameSync("sub", "sub.real");
      fs.renameSync("lnk", "sub");
      fs.renameSync("sub", "lnk");
      fs.renameSync("sub.real", "sub");
    }`;
  return spawnChild([...setprivAs(OTHER_UID), process.execPath, "-e", src], { timeoutMs: 300_000 });
}

describe("root admin commands and symlinks", () => {
  const teardown = new Teardown();
  let fs: Ext4;
  let fr: FanrecallInstance;
  let watched: string;

  before(
    async () => {
      if (!isRoot()) return;
      fs = await makeExt4(256);
      teardown.add(() => fs.cleanup());
      // The watched directory is below the mount point: the rest of the filesystem is watched
      // (the marks are per filesystem) but is not beneath a watched directory.
      watched = join(fs.dir, "watched");
      mkdirSync(watched, { mode: 0o755 });
      fr = await startFanrecall({ watch: [watched] });
      teardown.add(() => fr.stop());
    },
    { timeout: 60_000 },
  );

  after(() => teardown.run(), { timeout: 60_000 });

  rootTest("a directory swapped for a symlink mid-path: archive, release and status are refused", async () => {
    const secret = makeSecret(join(fs.dir, "secret-mid"), "f.bin");
    const user = join(watched, "user-mid");
    makeUserTree(user, 0);
    await swapForSymlink(user, join(fs.dir, "secret-mid"));
    const path = join(user, "sub", "f.bin");
    for (const op of ["release", "archive", "status"]) {
      const r = await fr.cli([op, path]);
      assert.notEqual(r.code, 0, `${op} exits non-zero`);
      assert.ok(
        r.stderr.includes(`${path}: a symlink is on the way`) && r.stderr.includes("(invalid-path)"),
        `${op} names the path and the reason: ${r.stderr}`,
      );
      assert.equal(r.stdout.toString(), "", `${op} reports nothing about the root file`);
    }
    assertUntouched(secret);
    // Control: with the directory back, the same path is released (the refusal was the symlink's).
    const back = await runAsUid(OTHER_UID, ["sh", "-c", "rm sub && mv sub.old sub"], { cwd: user });
    assert.equal(back.code, 0, back.stderr);
    const ok = await fr.cli(["release", path]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((await fr.status([path]))[0].state, "released");
  });

  rootTest("a file on the watched filesystem but beneath no watched directory is refused", async () => {
    const secret = makeSecret(join(fs.dir, "secret-beneath"), "f.bin");
    for (const op of ["release", "archive", "restore", "status"]) {
      const r = await fr.cli([op, secret.path]);
      assert.notEqual(r.code, 0, `${op} exits non-zero`);
      assert.match(r.stderr, /not beneath a directory the listener watches \(invalid-path\)/, op);
    }
    assertUntouched(secret);
  });

  rootTest("recursion never follows a symlink inside the tree", async () => {
    const secret = makeSecret(join(fs.dir, "secret-tree"), "f.bin");
    const tree = join(watched, "tree");
    makeUserTree(tree, 3);
    const links = await runAsUid(
      OTHER_UID,
      [
        "sh",
        "-c",
        `ln -s "$0" dirlink && ln -s "$0/f.bin" filelink && ln -s "$0" sub/deeper`,
        secret.path.replace(/\/f\.bin$/, ""),
      ],
      { cwd: tree },
    );
    assert.equal(links.code, 0, links.stderr);
    const r = await fr.cli(["release", tree]);
    assert.equal(r.code, 0, r.stderr);
    const states = await fr.status([tree]);
    assert.deepEqual(
      states.map((s) => [s.path.slice(tree.length + 1), s.state]),
      ["f.bin", "f000.bin", "f001.bin", "f002.bin"].map((n) => [`sub/${n}`, "released"]),
    );
    assertUntouched(secret);
  });

  rootTest(
    "a directory flipping to a symlink during a recursive release and status never reaches the root file",
    async () => {
      // The root files have the user's names, so a path through the symlink names one of them.
      const secrets = makeSecrets(join(fs.dir, "secret-race"), userNames(40));
      const user = join(watched, "user-race");
      makeUserTree(user, 40);
      const swapper = swapLoop(user, join(fs.dir, "secret-race"));
      try {
        await new Promise<void>((resolve, reject) => {
          swapper.child.stdout?.once("data", () => resolve());
          swapper.child.once("exit", () => reject(new Error("the swapper exited")));
        });
        const seen: string[] = [];
        const release = fr.cli(["release", user], 240_000);
        for (let i = 0; i < 15; i++) {
          const s = await fr.cli(["status", "--json", user]);
          for (const line of s.stdout.toString().split("\n").filter(Boolean)) {
            const st = JSON.parse(line) as { path: string; size: number };
            if (st.size === SECRET_SIZE) seen.push(st.path);
          }
        }
        const r = await release;
        assert.equal(r.signal, null, r.stderr);
        assert.deepEqual(seen, [], "status never reported the root file");
      } finally {
        swapper.kill();
        await swapper.result;
      }
      for (const s of secrets) assertUntouched(s);
    },
    { timeout: 300_000 },
  );
});
