// Recall rules end to end (`fanrecall start --recall-rules FILE`, s3rver, a loop ext4): a rule
// denying the command `cat` makes cat's read of a released stub fail with the rule's errno
// (EPERM) at once, the store is asked for nothing and the listener writes one audit line;
// another reader of the same stub (dd) gets the right bytes; a `low` caller (sha256sum) gets
// the right bytes too, its audit record names its rule; every decision is in /metrics by rule.
import { after, before, describe } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isRoot, rootTest } from "../helpers/root.js";
import { OTHER_UID, runAsUid } from "../helpers/child.js";
import { makeExt4 } from "../helpers/loop-fs.js";
import type { Ext4 } from "../helpers/loop-fs.js";
import { startS3rver } from "../helpers/object-server.js";
import type { ObjectServer } from "../helpers/object-server.js";
import { metricsUrlOf, startFanrecall } from "../helpers/fanrecall-instance.js";
import type { FanrecallInstance } from "../helpers/fanrecall-instance.js";
import { sha256 } from "../helpers/reader-files.js";

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const RULES = [
  { name: "no-cat", match: { command: "cat" }, action: "deny", errno: "EPERM" },
  { name: "backup", match: { command: "sha256sum" }, action: "low", max: 1 },
];
const FETCHED = "fanrecall_store_bytes_fetched_total";
const decisions = (rule: string, action: string) =>
  `fanrecall_recall_rule_decisions_total{rule="${rule}",action="${action}"}`;

describe("recall rules", () => {
  let fs: Ext4;
  let store: ObjectServer;
  let fr: FanrecallInstance;
  let rulesDir = "";
  let metricsUrl = "";

  /** One series' value from /metrics, or -1 when it is not there (yet). */
  async function metric(series: string): Promise<number> {
    const text = await (await fetch(metricsUrl)).text();
    const line = text.split("\n").find((l) => l.startsWith(`${series} `));
    return line === undefined ? -1 : Number(line.slice(series.length + 1));
  }

  /** Waits (bounded) until the listener's next report shows `series` at `atLeast` or more. */
  async function reported(series: string, atLeast: number): Promise<number> {
    const deadline = Date.now() + 20_000;
    let n = await metric(series);
    while (n < atLeast && Date.now() < deadline) {
      await sleep(250);
      n = await metric(series);
    }
    assert.ok(n >= atLeast, `${series} is ${n}, not at least ${atLeast}`);
    return n;
  }

  function releasedFile(name: string): Promise<{ path: string; sum: string }> {
    const path = join(fs.dir, name);
    const data = randomBytes(3 * MiB);
    writeFileSync(path, data);
    chmodSync(path, 0o644);
    return fr.cli(["release", path]).then((r) => {
      assert.equal(r.code, 0, r.stderr);
      return { path, sum: sha256(data) };
    });
  }

  before(
    async () => {
      if (!isRoot()) return;
      rulesDir = mkdtempSync(join(tmpdir(), "fanrecall-rules-"));
      const rules = join(rulesDir, "rules.json");
      writeFileSync(rules, JSON.stringify(RULES));
      fs = await makeExt4(256);
      store = await startS3rver();
      fr = await startFanrecall({
        watch: [fs.dir],
        server: store,
        env: { FANRECALL_METRICS_ADDRESS: "127.0.0.1:0" },
        extraArgs: ["--chunk-size", String(MiB), "--recall-rules", rules],
      });
      metricsUrl = await metricsUrlOf(fr);
    },
    { timeout: 60_000 },
  );

  after(
    async () => {
      if (!isRoot()) return;
      await fr?.stop();
      await store?.stop();
      await fs?.cleanup();
      rmSync(rulesDir, { recursive: true, force: true });
    },
    { timeout: 60_000 },
  );

  rootTest(
    "cat, denied by a rule, fails with EPERM and fetches nothing; dd then reads the same stub's right bytes",
    async () => {
      const f = await releasedFile("denied.bin");
      await reported(decisions("no-cat", "deny"), 0);
      const fetchedBefore = await metric(FETCHED);
      const mark = fr.output().length;
      const cat = await runAsUid(OTHER_UID, ["cat", f.path], { timeoutMs: 30_000 });
      assert.notEqual(cat.code, 0);
      assert.match(cat.stderr, /Operation not permitted/);
      assert.equal(cat.stdout.length, 0);
      await reported(decisions("no-cat", "deny"), 1);
      assert.equal(await metric(FETCHED), fetchedBefore, "the store was asked for nothing");
      const status = await fr.status([f.path]);
      assert.equal(status[0].state, "released");
      assert.equal(status[0].populatedBytes, 0);
      const line = fr
        .output()
        .slice(mark)
        .split("\n")
        .find((l) => l.includes('"audit":"recall-rule"'));
      assert.ok(line, "the listener's audit line");
      const audit = JSON.parse(line) as Record<string, unknown>;
      assert.equal(audit.rule, "no-cat");
      assert.equal(audit.action, "deny");
      assert.equal(audit.command, "cat");
      assert.equal(audit.uid, OTHER_UID);
      assert.equal(audit.reason, "denied-by-rule");
      assert.ok(Number(audit.pid) > 0);
      const dd = await runAsUid(OTHER_UID, ["dd", `if=${f.path}`, "bs=1M", "status=none"], { timeoutMs: 30_000 });
      assert.equal(dd.code, 0, dd.stderr);
      assert.equal(sha256(dd.stdout), f.sum);
      assert.ok((await metric(FETCHED)) >= fetchedBefore + 3 * MiB, "dd's recall fetched the file");
      await reported(decisions("default", "allow"), 1);
      await reported('fanrecall_listener_verdicts_total{verdict="deny",reason="denied-by-rule"}', 1);
    },
    { timeout: 90_000 },
  );

  rootTest(
    "a low caller (sha256sum) gets the right bytes; its audit record names its rule",
    async () => {
      const f = await releasedFile("low.bin");
      const mark = fr.output().length;
      const sum = await runAsUid(OTHER_UID, ["sha256sum", f.path], { timeoutMs: 30_000 });
      assert.equal(sum.code, 0, sum.stderr);
      assert.equal(sum.stdout.toString().split(" ")[0], f.sum);
      await reported(decisions("backup", "low"), 1);
      const audits = fr
        .output()
        .slice(mark)
        .split("\n")
        .filter((l) => l.includes('"audit":"recall"'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.ok(audits.length >= 1, "the recall service audited the recall");
      for (const a of audits) {
        assert.equal(a.command, "sha256sum");
        assert.equal(a.rule, "backup");
      }
    },
    { timeout: 90_000 },
  );
});
