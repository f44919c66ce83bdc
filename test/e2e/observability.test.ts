// Health, metrics and audit of a real `fanrecall start` against a real S3 server (s3rver):
// the Prometheus endpoint's counters move after a recall (the listener's too, reported over
// gRPC), grpc.health.v1 reports NOT_SERVING for recall.v1.RecallService while the store is
// down and SERVING again once it is back, and every recall leaves one audit record naming
// the process that caused it.
import { after, before, describe } from "node:test";
import assert from "node:assert/strict";
import { Health, ServingStatus, createClient } from "../../proto/index.js";
import { isRoot, rootTest } from "../helpers/root.js";
import { runAsNobody } from "../helpers/child.js";
import { makeExt4 } from "../helpers/loop-fs.js";
import type { Ext4 } from "../helpers/loop-fs.js";
import { startS3rver } from "../helpers/object-server.js";
import type { ObjectServer } from "../helpers/object-server.js";
import { metricsUrlOf, startFanrecall } from "../helpers/fanrecall-instance.js";
import type { FanrecallInstance } from "../helpers/fanrecall-instance.js";
import { checkReaders, writeRandomFiles } from "../helpers/reader-files.js";
import { recallGrpcSocketPath } from "../../ipc/run-dir.js";

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One sample's value from Prometheus text (0 when the series is absent). */
function sample(text: string, series: string): number {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return 0;
}

describe("health, metrics and audit", () => {
  let fs: Ext4;
  let store: ObjectServer;
  let fr: FanrecallInstance;
  let metricsUrl = "";

  async function scrape(): Promise<string> {
    const res = await fetch(metricsUrl);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    return res.text();
  }

  async function recallHealth(): Promise<ServingStatus> {
    const h = createClient(Health, `unix://${recallGrpcSocketPath(fr.runDir)}`);
    try {
      return (await h.client.check({ service: "recall.v1.RecallService" }, { timeoutMs: 5_000 })).status;
    } finally {
      h.close();
    }
  }

  async function waitForHealth(want: ServingStatus, what: string): Promise<void> {
    const deadline = Date.now() + 30_000;
    while ((await recallHealth()) !== want) {
      assert.ok(Date.now() < deadline, `health never became ${what}`);
      await sleep(200);
    }
  }

  before(
    async () => {
      if (!isRoot()) return;
      fs = await makeExt4(256);
      store = await startS3rver();
      fr = await startFanrecall({
        watch: [fs.dir],
        server: store,
        env: { FANRECALL_METRICS_ADDRESS: "127.0.0.1:0" },
        extraArgs: ["--chunk-size", String(MiB)],
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
    },
    { timeout: 60_000 },
  );

  rootTest(
    "a recall moves the recall, byte and listener counters and writes one audit record",
    async () => {
      await waitForHealth(ServingStatus.SERVING, "SERVING");
      const before = await scrape();
      const files = writeRandomFiles(fs.dir, "metrics", 2, 3 * MiB);
      const r = await fr.cli(["release", ...files.keys()]);
      assert.equal(r.code, 0, r.stderr);
      const mark = fr.output().length;
      const reads = await Promise.all([...files.keys()].map((p) => runAsNobody(["cat", p], { timeoutMs: 30_000 })));
      assert.equal(checkReaders(reads, files, false), 0);
      const recalled = 'fanrecall_recalls_total{verdict="allow",reason="recalled"}';
      const deadline = Date.now() + 15_000;
      let now = await scrape();
      // The listener's counters arrive with its next report (every 5 s).
      while (
        sample(now, "fanrecall_listener_events_total") <= sample(before, "fanrecall_listener_events_total") &&
        Date.now() < deadline
      ) {
        await sleep(500);
        now = await scrape();
      }
      assert.ok(sample(now, recalled) >= sample(before, recalled) + 2, "recalls counted");
      assert.ok(
        sample(now, "fanrecall_recall_bytes_written_total") >=
          sample(before, "fanrecall_recall_bytes_written_total") + 6 * MiB,
        "bytes written counted",
      );
      assert.ok(sample(now, "fanrecall_store_bytes_fetched_total") >= 6 * MiB, "store bytes counted");
      assert.ok(sample(now, "fanrecall_recall_duration_seconds_count") >= 2, "latency observed");
      assert.ok(
        sample(now, "fanrecall_listener_events_total") > sample(before, "fanrecall_listener_events_total"),
        "listener events reported",
      );
      assert.equal(sample(now, "fanrecall_listener_up"), 1);
      assert.equal(sample(now, "fanrecall_store_up"), 1);
      assert.doesNotMatch(now, new RegExp(store.secretKey), "no secret in the metrics");

      const audits = fr
        .output()
        .slice(mark)
        .split("\n")
        .filter((l) => l.includes('"audit":"recall"'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.ok(audits.length >= 2, `one audit record per recall, got ${audits.length}`);
      for (const a of audits) {
        assert.equal(a.command, "cat");
        assert.equal(a.uid, 65534);
        assert.equal(a.verdict, "allow");
        assert.equal(a.reason, "recalled");
        assert.equal(typeof a.cgroup, "string");
        assert.ok(Number(a.eventPid) > 0 && Number(a.ino) > 0);
      }
      assert.doesNotMatch(fr.output(), new RegExp(store.secretKey), "no secret in the logs");
    },
    { timeout: 60_000 },
  );

  rootTest(
    "health is NOT_SERVING while the object store is down and SERVING again when it is back",
    async () => {
      await waitForHealth(ServingStatus.SERVING, "SERVING");
      await store.kill();
      try {
        await waitForHealth(ServingStatus.NOT_SERVING, "NOT_SERVING");
        assert.equal(sample(await scrape(), "fanrecall_store_up"), 0);
      } finally {
        await store.restart();
      }
      await waitForHealth(ServingStatus.SERVING, "SERVING again");
      assert.equal(sample(await scrape(), "fanrecall_store_up"), 1);
    },
    { timeout: 90_000 },
  );
});
