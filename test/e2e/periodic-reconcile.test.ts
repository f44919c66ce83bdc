// `fanrecall start`'s periodic reconcile (cli/periodic-reconcile.ts), end to end, against a
// real s3rver: with --reconcile-every 2s, snapshots of the watched directory appear in the
// store with nobody asking; while the store is down every run fails, is logged with its next
// try and tried again, and start keeps running; once the store is back a later run writes a
// snapshot that holds the file archived meanwhile.
import { after, before, describe } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startFanrecall } from "../helpers/fanrecall-instance.js";
import type { FanrecallInstance } from "../helpers/fanrecall-instance.js";
import { makeExt4 } from "../helpers/loop-fs.js";
import type { Ext4 } from "../helpers/loop-fs.js";
import { makeBucket, s3Client, startS3rver } from "../helpers/object-server.js";
import type { ObjectServer } from "../helpers/object-server.js";
import { waitFor } from "../helpers/procs.js";
import { isRoot, rootTest } from "../helpers/root.js";

const BUCKET = "fanrecall-periodic";
const FAILED = /reconcile of \S+ failed \(exit \d+\); next try in 2s/g;

describe("periodic reconcile", () => {
  let fs: Ext4;
  let s3: ObjectServer;
  let fr: FanrecallInstance;

  /** Names of the snapshot objects in the store now. */
  async function snapshots(): Promise<string[]> {
    const names: string[] = [];
    const stream = s3Client(s3).listObjectsV2(BUCKET, "", true);
    for await (const o of stream as AsyncIterable<{ name?: string }>) {
      if (o.name?.includes("/snapshots/")) names.push(o.name);
    }
    return names;
  }

  /** Summary lines of successful runs in start's log that counted `files` files. */
  const summaries = (files: number) =>
    fr
      .output()
      .split("\n")
      .filter((l) => l.includes(`reconcile: ${files} files in the snapshot of`)).length;

  before(
    async () => {
      if (!isRoot()) return;
      fs = await makeExt4(64);
      s3 = await startS3rver();
      await makeBucket(s3, BUCKET);
      fr = await startFanrecall({
        watch: [fs.dir],
        server: s3,
        bucket: BUCKET,
        extraArgs: ["--reconcile-every", "2s"],
      });
    },
    { timeout: 120_000 },
  );

  after(
    async () => {
      if (!isRoot()) return;
      await fr?.stop();
      await s3?.stop();
      await fs?.cleanup();
    },
    { timeout: 60_000 },
  );

  rootTest(
    "snapshots appear on their own; a store that is down fails runs, which are retried, never start",
    async () => {
      const a = join(fs.dir, "a.bin");
      writeFileSync(a, randomBytes(100_000));
      const archived = await fr.cli(["archive", a]);
      assert.equal(archived.code, 0, archived.stderr);
      await waitFor("a snapshot with the archived file", () => summaries(1) > 0, 30_000, 100);
      assert.ok((await snapshots()).length > 0, "no snapshot object in the store");

      // The store goes away: runs fail, each logged with its next try, and start stays up.
      await s3.kill();
      const failedBefore = [...fr.output().matchAll(FAILED)].length;
      await waitFor("two failed runs", () => [...fr.output().matchAll(FAILED)].length >= failedBefore + 2, 60_000, 100);
      assert.equal(fr.child.exitCode, null, "fanrecall start exited while the store was down");

      // The store is back: a file archived now is in a later snapshot.
      await s3.restart();
      const b = join(fs.dir, "b.bin");
      writeFileSync(b, randomBytes(50_000));
      const again = await fr.cli(["archive", b], 60_000);
      assert.equal(again.code, 0, again.stderr);
      await waitFor("a snapshot with both files", () => summaries(2) > 0, 30_000, 100);
      assert.equal(fr.child.exitCode, null);
    },
    { timeout: 240_000 },
  );
});
