// Root loads only root code: a real listener (watching a loop ext4, serving a real access)
// and a real holder run under strace, and every file they open is checked. None may be the
// recall service, the minio client, the mesh TLS server, s3rver or its HTTP stack; the
// listener's own code must be there (so the check sees what it should).
import { after, before, describe } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isRoot, rootTest } from "../helpers/root.js";
import { runChild, spawnChild } from "../helpers/child.js";
import { makeExt4 } from "../helpers/loop-fs.js";
import type { Ext4 } from "../helpers/loop-fs.js";
import { BIN } from "../helpers/fanrecall-instance.js";
import { adminSocketPath, holderSocketPath } from "../../ipc/run-dir.js";

/** Paths no root process may open: the unprivileged half and everything only it needs. */
const FORBIDDEN =
  /node_modules\/(minio|s3rver|koa[^/]*|busboy|fast-xml-parser|xml2js)\/|\/recall-service\/|\/cli\/(s3rver-main|embedded-s3|mesh-command)\.js/;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Files opened by a traced process (strace -f output), deduplicated. */
function openedFiles(trace: string): string[] {
  return [...new Set([...trace.matchAll(/open(?:at)?\([^"]*"([^"]+)"/g)].map((m) => m[1]))];
}

describe("root processes load only root code", () => {
  let fs: Ext4;
  let work: string;

  before(async () => {
    if (!isRoot()) return;
    fs = await makeExt4(256);
    work = mkdtempSync(join(tmpdir(), "fanrecall-modules-"));
  });
  after(async () => {
    if (!isRoot()) return;
    rmSync(work, { recursive: true, force: true });
    await fs.cleanup();
  });

  async function traced(name: string, args: readonly string[], ready: string, act: () => Promise<void>) {
    const out = join(work, `${name}.strace`);
    const p = spawnChild(
      ["strace", "-f", "-qq", "-e", "trace=open,openat", "-o", out, process.execPath, BIN, ...args],
      {
        timeoutMs: 60_000,
      },
    );
    try {
      const deadline = Date.now() + 30_000;
      while (!existsSync(ready)) {
        assert.ok(Date.now() < deadline && p.child.exitCode === null, `${name} did not become ready`);
        await sleep(50);
      }
      await act();
    } finally {
      // SIGTERM to strace would only detach it: stop the traced process itself (strace's child).
      const children = readFileSync(`/proc/${p.pid}/task/${p.pid}/children`, "utf8").trim().split(/\s+/);
      for (const pid of children.filter(Boolean)) process.kill(Number(pid), "SIGTERM");
      await p.result;
    }
    return openedFiles(readFileSync(out, "utf8"));
  }

  rootTest(
    "a running listener that served an access, and a holder, open nothing of the recall side",
    async () => {
      const file = join(fs.dir, "plain.txt");
      writeFileSync(file, "resident\n");
      const runDir = join(work, "run");
      const listener = await traced(
        "listener",
        ["listener", "--watch", fs.dir, "--run-dir", runDir, "--holder-socket", "", "--recall-uid", "1234"],
        adminSocketPath(runDir),
        async () => {
          const r = await runChild(["cat", file], { timeoutMs: 20_000 });
          assert.equal(r.stdout.toString(), "resident\n");
        },
      );
      assert.ok(
        listener.some((f) => f.endsWith("/dist/listener/main.js")),
        "the trace shows the listener's own modules",
      );
      assert.deepEqual(
        listener.filter((f) => FORBIDDEN.test(f)),
        [],
        "the listener opened recall-side files",
      );
      const socket = holderSocketPath(work);
      const holder = await traced("holder", ["holder", "--socket", socket], `${socket}.ready`, async () => {});
      assert.ok(
        holder.some((f) => f.endsWith("/dist/holder/main.js")),
        "the trace shows the holder's own modules",
      );
      assert.deepEqual(
        holder.filter((f) => FORBIDDEN.test(f)),
        [],
        "the holder opened recall-side files",
      );
      // The shared socket code (ipc/) is root code too: both load it.
      for (const [name, files] of [
        ["listener", listener],
        ["holder", holder],
      ] as const) {
        assert.ok(
          files.some((f) => f.endsWith("/dist/ipc/seqpacket-server.js")),
          `${name} loads ipc/`,
        );
      }
    },
    { timeout: 120_000 },
  );
});
