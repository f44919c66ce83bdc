// Shutdown and upgrade with real processes: a listener handing its group to the holder
// (SIGUSR2) and a second listener running side by side while the first stops (SIGTERM).
// Readers running across either never see wrong bytes; with a second listener in place,
// they see no error at all. The recall service runs with no capabilities and no_new_privs.
import { after, before, describe } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isRoot, rootTest } from "../helpers/root.js";
import { runAsNobody, spawnAsNobody, spawnChild } from "../helpers/child.js";
import type { ChildResult } from "../helpers/child.js";
import { makeExt4 } from "../helpers/loop-fs.js";
import type { Ext4 } from "../helpers/loop-fs.js";
import { startS3rver } from "../helpers/object-server.js";
import type { ObjectServer } from "../helpers/object-server.js";
import { BIN, recallUser, startFanrecall } from "../helpers/fanrecall-instance.js";
import type { FanrecallInstance } from "../helpers/fanrecall-instance.js";
import { checkReaders, writeRandomFiles } from "../helpers/reader-files.js";

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pidsOf(fr: FanrecallInstance, command: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").join(" ");
      if (cmd.includes(`fanrecall.js ${command} `) && cmd.includes(fr.runDir)) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

describe("shutdown and upgrade", () => {
  let fs: Ext4;
  let store: ObjectServer;
  let fr: FanrecallInstance;

  async function releasedFiles(prefix: string, n: number, size: number): Promise<Map<string, string>> {
    const files = writeRandomFiles(fs.dir, prefix, n, size);
    const r = await fr.cli(["release", ...files.keys()]);
    assert.equal(r.code, 0, r.stderr);
    return files;
  }

  before(
    async () => {
      if (!isRoot()) return;
      fs = await makeExt4(512);
      store = await startS3rver();
      fr = await startFanrecall({ watch: [fs.dir], server: store, extraArgs: ["--chunk-size", String(MiB)] });
    },
    { timeout: 60_000 },
  );

  after(
    async () => {
      if (!isRoot()) return;
      store?.resume();
      await fr?.stop();
      await store?.stop();
      await fs?.cleanup();
    },
    { timeout: 60_000 },
  );

  rootTest("the recall service runs as the recall user with no capabilities and no_new_privs", () => {
    const [pid] = pidsOf(fr, "recall-service");
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const { uid } = recallUser();
    assert.match(status, new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, "m"));
    assert.match(status, /^CapEff:\s+0+$/m);
    assert.match(status, /^CapPrm:\s+0+$/m);
    assert.match(status, /^CapBnd:\s+0+$/m);
    assert.match(status, /^NoNewPrivs:\s+1$/m);
  });

  rootTest(
    "SIGUSR2: the listener leaves its group with the holder and the next one serves the held readers",
    async () => {
      const files = await releasedFiles("handoff", 8, 4 * MiB);
      const [old] = pidsOf(fr, "listener");
      store.pause();
      let results: ChildResult[];
      try {
        const readers = [...files.keys()].map((p) => spawnAsNobody(["cat", p], { timeoutMs: 60_000 }));
        await sleep(500);
        process.kill(old, "SIGUSR2");
        await sleep(500);
        store.resume();
        results = await Promise.all(readers.map((r) => r.result));
      } finally {
        store.resume();
      }
      checkReaders(results, files, true);
      const deadline = Date.now() + 20_000;
      while (!fr.output().includes('"tookOver":true')) {
        assert.ok(Date.now() < deadline, "no listener took the group over");
        await sleep(100);
      }
      const again = await Promise.all([...files.keys()].map((p) => runAsNobody(["cat", p], { timeoutMs: 30_000 })));
      assert.equal(checkReaders(again, files, false), 0);
    },
    { timeout: 120_000 },
  );

  rootTest(
    "a second listener side by side keeps every reader served while the first one stops",
    async () => {
      const files = await releasedFiles("sidebyside", 16, 3 * MiB);
      const dir = mkdtempSync(join(tmpdir(), "fanrecall-second-"));
      const adminB = join(dir, "admin.sock");
      const b = spawnChild(
        [
          process.execPath,
          BIN,
          "listener",
          "--watch",
          fs.dir,
          "--run-dir",
          fr.runDir,
          "--holder-socket",
          "",
          "--admin-socket",
          adminB,
          "--recall-uid",
          String(recallUser().uid),
        ],
        { timeoutMs: 120_000 },
      );
      try {
        const deadline = Date.now() + 20_000;
        while (!existsSync(adminB)) {
          assert.ok(Date.now() < deadline && b.child.exitCode === null, "the second listener did not start");
          await sleep(50);
        }
        const [first] = pidsOf(fr, "listener").filter((p) => p !== b.pid);
        const readers = [...files.keys()].map((p, i) =>
          sleep(i * 40).then(() => runAsNobody(["cat", p], { timeoutMs: 60_000 })),
        );
        await sleep(150);
        process.kill(first, "SIGTERM");
        const results = await Promise.all(readers);
        assert.equal(checkReaders(results, files, false), 0, "a reader failed during the upgrade");
      } finally {
        b.child.kill("SIGTERM");
        await b.result;
        rmSync(dir, { recursive: true, force: true });
      }
      const later = await releasedFiles("after", 2, MiB);
      const again = await Promise.all([...later.keys()].map((p) => runAsNobody(["cat", p], { timeoutMs: 30_000 })));
      assert.equal(checkReaders(again, later, false), 0);
    },
    { timeout: 120_000 },
  );
});
