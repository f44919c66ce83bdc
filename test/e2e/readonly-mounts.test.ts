// Stubs read through read-only mounts, real processes only: a read-only bind mount an
// unprivileged user (uid 1234) makes in its own user and mount namespace (`unshare -Urm`),
// and read-only bind mounts made by root. The kernel opens event fds on the path the reader
// used, so on a read-only mount only a read-only event fd can be had; the listener must serve
// those reads with the right bytes and must not die doing it.
import { after, before, describe } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { basename, join } from "node:path";
import { isRoot, rootTest } from "../helpers/root.js";
import { runChild } from "../helpers/child.js";
import { bindMount, makeExt4, makeScratchDir } from "../helpers/loop-fs.js";
import type { Ext4 } from "../helpers/loop-fs.js";
import { startFanrecall } from "../helpers/fanrecall-instance.js";
import type { FanrecallInstance } from "../helpers/fanrecall-instance.js";
import { writeRandomFiles } from "../helpers/reader-files.js";
import { fanrecallPids } from "../helpers/procs.js";
import { ReadLedger, SETPRIV_READER, spawnReader } from "../helpers/timed-readers.js";
import { Teardown } from "../helpers/teardown.js";

const KiB = 1024;
const DEADLINE_MS = 5_000;
const LIMIT_MS = DEADLINE_MS + 5_000;

/**
 * Inside the reader's own user and mount namespace: bind W onto itself, make that read-only,
 * print the options of the file's (top) mount to stderr, then read the file.
 */
const USERNS_RO_READ = [
  "unshare",
  "-Urm",
  "sh",
  "-c",
  'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && findmnt -n -o OPTIONS --target "$2" | tail -n 1 | sed "s/^/mount: /" >&2 && cat "$2"',
  "sh",
];

describe("read-only mounts", () => {
  const teardown = new Teardown();
  let fs: Ext4;
  let fr: FanrecallInstance;

  /** `n` random files, released, each shown `released` by status. */
  async function releasedFiles(prefix: string, n: number, size: number): Promise<Map<string, string>> {
    const files = writeRandomFiles(fs.dir, prefix, n, size);
    const r = await fr.cli(["release", ...files.keys()]);
    assert.equal(r.code, 0, r.stderr);
    const states = await fr.status([...files.keys()]);
    assert.deepEqual(
      states.map((s) => s.state),
      [...files.keys()].map(() => "released"),
    );
    return files;
  }

  function listenerPid(): number {
    const pids = fanrecallPids(fr.runDir, "listener");
    assert.equal(pids.length, 1, `one listener: ${pids.join(", ")}`);
    return pids[0];
  }

  before(
    async () => {
      if (!isRoot()) return;
      fs = await makeExt4(256);
      teardown.add(() => fs.cleanup());
      fr = await startFanrecall({
        watch: [fs.dir],
        env: { FANRECALL_RECALL_TIMEOUT_MS: String(DEADLINE_MS) },
      });
      teardown.add(async () => {
        const code = await fr.stop();
        if (code !== 0) process.stderr.write(fr.output().slice(-5000));
      });
    },
    { timeout: 120_000 },
  );

  after(() => teardown.run(), { timeout: 60_000 });

  rootTest(
    "uid 1234 reads 20 released stubs within a minute through its own read-only bind mount in a user namespace",
    async (t: TestContext) => {
      const files = await releasedFiles("userns", 20, 1024 * KiB);
      const listener = listenerPid();
      const ledger = new ReadLedger(LIMIT_MS);
      // releasedFiles() has just shown every one `released`; nothing else touches them.
      const started = Date.now();
      const took: number[] = [];
      for (const [path, sum] of files) {
        const reader = spawnReader(path, [...USERNS_RO_READ, fs.dir, path]);
        const r = await reader.result;
        took.push(r.ms);
        assert.match(r.stderr, /^mount: ro,/m, `the reader's mount is read-only: ${r.stderr}`);
        ledger.add("userns ro", path, r, sum);
      }
      const elapsed = Date.now() - started;
      t.diagnostic(`20 reads in ${elapsed} ms (each ${took.join(", ")} ms); ${ledger.toString()}`);
      assert.deepEqual(ledger.problems, [], `${ledger.toString()}\n${fr.output().slice(-4000)}`);
      assert.equal(ledger.right, 20, `every read gets the right bytes: ${ledger.toString()}`);
      assert.ok(elapsed < 60_000, `20 reads took ${elapsed} ms`);
      assert.equal(listenerPid(), listener, "the listener never died");
      assert.doesNotMatch(fr.output(), /exited/, "no child of fanrecall start exited");
      const after = await fr.status([...files.keys()]);
      assert.ok(
        after.every((s) => s.state !== "released"),
        `read stubs were recalled: ${after.map((s) => s.state).join(" ")}`,
      );
    },
    { timeout: 180_000 },
  );

  rootTest(
    "uid 1234 reads released stubs through read-only bind mounts made by root",
    async (t: TestContext) => {
      const files = await releasedFiles("rootro", 6, 512 * KiB + 7);
      const paths = [...files.keys()];
      const listener = listenerPid();
      const ledger = new ReadLedger(LIMIT_MS);
      // A read-only bind mount in the root mount namespace, as a container's `:ro` volume is.
      const mounts = new Teardown();
      try {
        const base = makeScratchDir("fanrecall-robind-", 0o755);
        mounts.add(() => base.cleanup());
        const ro = join(base.dir, "ro");
        mkdirSync(ro, { mode: 0o755 });
        const bind = await bindMount(fs.dir, ro, { readOnly: true });
        mounts.add(() => bind.cleanup());
        const opts = await runChild(["findmnt", "-n", "-o", "OPTIONS", "--mountpoint", ro]);
        assert.match(opts.stdout.toString(), /^ro,/);
        for (const p of paths.slice(0, 3)) {
          const through = join(ro, basename(p));
          const r = await spawnReader(through).result;
          ledger.add("root ro bind", through, r, files.get(p)!);
        }
      } finally {
        await mounts.run();
      }
      // A read-only bind mount root makes in a private mount namespace (unshare -m); the
      // reader drops to uid 1234 inside it.
      for (const p of paths.slice(3)) {
        const script = `mount --bind -o ro "$1" "$1" && findmnt -n -o OPTIONS --target "$2" | tail -n 1 | sed "s/^/mount: /" >&2 && exec ${SETPRIV_READER.join(" ")} cat "$2"`;
        const t0 = Date.now();
        const r = await runChild(["unshare", "-m", "sh", "-c", script, "sh", fs.dir, p], { timeoutMs: 60_000 });
        assert.match(r.stderr, /^mount: ro,/m, `the mount is read-only: ${r.stderr}`);
        ledger.add("root ro bind in unshare -m", p, { ...r, ms: Date.now() - t0 }, files.get(p)!);
      }
      t.diagnostic(ledger.toString());
      assert.deepEqual(ledger.problems, [], `${ledger.toString()}\n${fr.output().slice(-4000)}`);
      assert.equal(ledger.right, 6, `every read gets the right bytes: ${ledger.toString()}`);
      assert.equal(listenerPid(), listener, "the listener never died");
      assert.doesNotMatch(fr.output(), /exited/);
    },
    { timeout: 120_000 },
  );
});
