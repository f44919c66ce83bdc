// A checkout other users cannot read (a clone in root's 0700 home), through the README's
// set-up: `fanrecall start` run from it says in one line what to do and starts nothing;
// scripts/install.sh then installs a copy every user can read, and `fanrecall start
// --state-dir X` from that copy works end to end, with the admin commands finding it by path
// (no --run-dir) although its sockets are in X/run.
//
// Owns: a 0700 "home" holding a bind mount of this checkout, an install prefix under /tmp
// instead of /usr/local, an ext4 image, one `fanrecall start`: all undone in after(), or on
// the way out when the process ends first (teardown.ts).
import { after, before, describe } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { isRoot, rootTest } from "../helpers/root.js";
import { runAsNobody, runChild } from "../helpers/child.js";
import { bindMount, makeExt4, makeScratchDir } from "../helpers/loop-fs.js";
import type { Ext4 } from "../helpers/loop-fs.js";
import { startFanrecall } from "../helpers/fanrecall-instance.js";
import { Teardown } from "../helpers/teardown.js";

const CHECKOUT = fileURLToPath(new URL("../../", import.meta.url));

describe("a clone in a 0700 directory, through the README's set-up", () => {
  const teardown = new Teardown();
  let clone = "";
  let prefix = "";
  let fs: Ext4 | undefined;

  before(
    async () => {
      if (!isRoot()) return;
      const home = makeScratchDir("/tmp/fanrecall-home-"); // 0700, as root's home
      teardown.add(() => home.cleanup());
      assert.equal(statSync(home.dir).mode & 0o777, 0o700);
      clone = join(home.dir, "fanrecall");
      mkdirSync(clone);
      const bind = await bindMount(CHECKOUT, clone);
      teardown.add(() => bind.cleanup());
      const prefixDir = makeScratchDir("/tmp/fanrecall-prefix-", 0o755);
      teardown.add(() => prefixDir.cleanup());
      prefix = prefixDir.dir;
      const made = await makeExt4(256);
      teardown.add(() => made.cleanup());
      fs = made;
    },
    { timeout: 60_000 },
  );

  after(() => teardown.run(), { timeout: 60_000 });

  rootTest(
    "start from the unreadable clone says in one line what to do, and starts nothing",
    async () => {
      const stateDir = join(prefix, "state-refused");
      const r = await runChild(
        [process.execPath, join(clone, "bin", "fanrecall.js"), "start", "--state-dir", stateDir, "--watch", fs!.dir],
        { timeoutMs: 30_000 },
      );
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stderr.trim().split("\n").length, 1, `one line:\n${r.stderr}`);
      assert.match(r.stderr, /^fanrecall start: the recall user \(uid \d+\) cannot read fanrecall's code in /);
      assert.match(r.stderr, /sudo bash scripts\/install\.sh/);
      assert.ok(!existsSync(stateDir), "nothing was set up");
    },
    { timeout: 60_000 },
  );

  rootTest(
    "scripts/install.sh, then start --state-dir from the copy; admin commands without --run-dir",
    async () => {
      const inst = await runChild(["bash", join(clone, "scripts", "install.sh"), "--prefix", prefix], {
        timeoutMs: 240_000,
      });
      assert.equal(inst.code, 0, inst.stderr);
      const bin = join(prefix, "bin", "fanrecall");
      const lib = join(prefix, "lib", "fanrecall");
      for (const f of ["dist/cli/s3rver-main.js", "dist/recall-service/main.js", "node_modules/s3rver/package.json"]) {
        const readable = await runAsNobody(["test", "-r", join(lib, f)]);
        assert.equal(readable.code, 0, `${f} readable by other users`);
      }
      assert.ok(!existsSync(join(lib, "node_modules", "node-gyp")), "no build tools installed");
      assert.ok(!existsSync(join(lib, "node_modules", "typescript")), "no dev dependencies installed");
      const fr = await startFanrecall({ watch: [fs!.dir], bin });
      teardown.add(async () => assert.equal(await fr.stop(), 0, "fanrecall start exits 0 on SIGTERM"));
      assert.equal(fr.runDir, join(fr.stateDir, "run"));
      const path = join(fs!.dir, "video.bin");
      const data = randomBytes(2 * 1024 * 1024 + 3);
      writeFileSync(path, data, { mode: 0o644 });
      for (const op of ["archive", "release"]) {
        const r = await fr.cliByPath([op, path]);
        assert.equal(r.code, 0, `${op}: ${r.stderr}`);
      }
      const s = await fr.cliByPath(["status", "--json", path]);
      assert.equal(s.code, 0, s.stderr);
      assert.equal((JSON.parse(s.stdout.toString()) as { state: string }).state, "released");
      const cat = await runAsNobody(["cat", path]);
      assert.equal(cat.code, 0, cat.stderr);
      assert.ok(cat.stdout.equals(data), "the stub reads back the original bytes");
    },
    { timeout: 300_000 },
  );
});
