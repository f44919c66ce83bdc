// The quick start's secrets and store are the recall service's alone (issue 11, item 4): a
// real `fanrecall start` on the embedded s3rver, probed by real processes as uid 65534, as
// OTHER_UID, and as the recall user itself.
//   - the recall service and the store run as the dedicated system user, not 65534;
//   - both are non-dumpable: nobody but root reads their environment, not even their own uid;
//   - the secret is on no command line and in no environment; its file is 0600, the recall user's;
//   - the store serves nothing to 65534 or OTHER_UID, not even with its own credentials, while
//     the same client as the recall user gets the object (the control that makes the
//     refusals mean something).
import { after, before, describe } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isRoot, rootTest } from "../helpers/root.js";
import { NOBODY, OTHER_UID, nodeEvalArgv, runAsUid, setprivAs, spawnChild } from "../helpers/child.js";
import { makeExt4 } from "../helpers/loop-fs.js";
import type { Ext4 } from "../helpers/loop-fs.js";
import { startFanrecall } from "../helpers/fanrecall-instance.js";
import type { FanrecallInstance } from "../helpers/fanrecall-instance.js";
import { fanrecallPids, procsWith } from "../helpers/procs.js";
import { lookupUser, RECALL_USER_NAME } from "../../cli/system-user.js";

const MINIO_URL = import.meta.resolve("minio");

/** Run as some uid: fetch one object and list the bucket with the store's own credentials. */
const FETCH = `
import * as Minio from ${JSON.stringify(MINIO_URL)};
import { createHash } from "node:crypto";
const u = new URL(process.env.S3_ENDPOINT);
const c = new Minio.Client({ endPoint: u.hostname, port: Number(u.port), useSSL: false,
  accessKey: process.env.S3_ACCESS_KEY, secretKey: process.env.S3_SECRET_KEY, region: "us-east-1", pathStyle: true });
const out = {};
try {
  const s = await c.getObject(process.env.S3_BUCKET, process.env.S3_KEY);
  const h = createHash("sha256"); let n = 0;
  for await (const b of s) { h.update(b); n += b.length; }
  out.object = { bytes: n, sha256: h.digest("hex") };
} catch (e) { out.object = { error: String(e.code ?? e.message) }; }
try {
  const names = [];
  for await (const o of c.listObjectsV2(process.env.S3_BUCKET, "", true)) names.push(o.name);
  out.list = { count: names.length };
} catch (e) { out.list = { error: String(e.code ?? e.message) }; }
process.stdout.write(JSON.stringify(out));
`;

interface FetchResult {
  object: { bytes?: number; sha256?: string; error?: string };
  list: { count?: number; error?: string };
}

describe("the quick start's secrets and store are the recall service's alone", () => {
  let fs: Ext4;
  let fr: FanrecallInstance;
  let recallUid: number;
  let recallPid: number;
  let storePid: number;
  let secret: string;
  let accessKey: string;
  let endpoint: string;
  let object: { bucket: string; key: string };
  const data = randomBytes(256 * 1024 + 5);

  before(
    async () => {
      if (!isRoot()) return;
      fs = await makeExt4(128);
      fr = await startFanrecall({ watch: [fs.dir] });
      const user = lookupUser(RECALL_USER_NAME);
      assert.ok(user, `fanrecall start created the system user '${RECALL_USER_NAME}'`);
      recallUid = user.uid;
      [recallPid] = fanrecallPids(fr.runDir, "recall-service");
      [storePid] = procsWith("s3rver-main", join(fr.stateDir, "s3")).map((p) => p.pid);
      assert.ok(recallPid > 0 && storePid > 0, "found the recall service and the store");
      const m = /demo object store .* on (http:\/\/\S+)/.exec(fr.output());
      assert.ok(m, fr.output());
      endpoint = m[1];
      secret = readFileSync(join(fr.stateDir, "s3-credentials", "secret-key"), "utf8").trim();
      accessKey = readFileSync(join(fr.stateDir, "s3-credentials", "access-key"), "utf8").trim();
      // Root's private file, archived: its bytes are in the store now.
      const path = join(fs.dir, "root-only.bin");
      writeFileSync(path, data, { mode: 0o600 });
      const a = await fr.cli(["archive", path]);
      assert.equal(a.code, 0, a.stderr);
      const st = (await fr.cli(["status", "--json", path])).stdout.toString();
      object = (JSON.parse(st) as { object: { bucket: string; key: string } }).object;
      assert.ok(object.key, st);
    },
    { timeout: 90_000 },
  );

  after(
    async () => {
      if (!isRoot()) return;
      await fr?.stop();
      await fs?.cleanup();
    },
    { timeout: 60_000 },
  );

  rootTest("the recall service and the store run as the dedicated user, neither root nor 65534", () => {
    assert.ok(recallUid !== 0 && recallUid !== NOBODY && recallUid !== OTHER_UID, `uid ${recallUid}`);
    for (const pid of [recallPid, storePid]) {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      const uids = new RegExp(`^Uid:\\s+${recallUid}\\s+${recallUid}\\s+${recallUid}\\s+${recallUid}$`, "m");
      assert.match(status, uids, `pid ${pid}`);
    }
  });

  rootTest("uid 65534, another uid and the recall user itself cannot read their environment", async () => {
    for (const pid of [recallPid, storePid]) {
      for (const uid of [NOBODY, OTHER_UID, recallUid]) {
        const r = await runAsUid(uid, ["cat", `/proc/${pid}/environ`]);
        assert.notEqual(r.code, 0, `uid ${uid} read /proc/${pid}/environ`);
        assert.equal(r.stdout.length, 0);
        assert.match(r.stderr, /Permission denied/);
      }
      const st = statSync(`/proc/${pid}/environ`);
      assert.deepEqual([st.uid, st.mode & 0o777], [0, 0o400], "non-dumpable: the file is root's");
    }
  });

  rootTest("the secret is in a 0600 file of the recall user's, and on no command line or environment", () => {
    assert.match(secret, /^[0-9a-f]{64}$/);
    const st = statSync(join(fr.stateDir, "s3-credentials", "secret-key"));
    assert.deepEqual([st.uid, st.mode & 0o777], [recallUid, 0o600]);
    const ours = [fr.child.pid ?? -1, ...procsWith(fr.stateDir).map((p) => p.pid)];
    assert.ok(ours.length >= 5, `supervisor, holder, listener, recall service, store: ${ours.join(" ")}`);
    for (const pid of ours) {
      for (const file of ["cmdline", "environ"]) {
        const text = readFileSync(`/proc/${pid}/${file}`, "latin1");
        assert.ok(!text.includes(secret), `the secret is in /proc/${pid}/${file}`);
        assert.ok(!text.includes("FANRECALL_S3_SECRET_KEY="), `/proc/${pid}/${file} names a secret key`);
      }
    }
  });

  rootTest(
    "uid 65534 and another uid get nothing from the store, even with its credentials; the recall user does",
    async () => {
      const env = {
        PATH: process.env.PATH,
        S3_ENDPOINT: endpoint,
        S3_ACCESS_KEY: accessKey,
        S3_SECRET_KEY: secret,
        S3_BUCKET: object.bucket,
        S3_KEY: object.key,
      };
      const fetchAs = async (uid: number): Promise<FetchResult> => {
        const r = await spawnChild([...setprivAs(uid), ...nodeEvalArgv(FETCH)], { env, timeoutMs: 30_000 }).result;
        assert.equal(r.code, 0, r.stderr);
        return JSON.parse(r.stdout.toString()) as FetchResult;
      };
      const control = await fetchAs(recallUid);
      assert.deepEqual(control.object, {
        bytes: data.length,
        sha256: createHash("sha256").update(data).digest("hex"),
      });
      assert.ok((control.list.count ?? 0) >= 1, JSON.stringify(control));
      for (const uid of [NOBODY, OTHER_UID]) {
        const got = await fetchAs(uid);
        assert.ok(
          got.object.error !== undefined && got.object.bytes === undefined,
          `uid ${uid}: ${JSON.stringify(got)}`,
        );
        assert.ok(got.list.error !== undefined && got.list.count === undefined, `uid ${uid}: ${JSON.stringify(got)}`);
      }
      assert.match(fr.output(), new RegExp(`refused a connection from uid ${NOBODY}`));
    },
    { timeout: 120_000 },
  );
});
