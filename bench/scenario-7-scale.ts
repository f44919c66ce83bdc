// bench/scenario-7-scale.ts: the listener with many stubs on its filesystem.
//
// Two watched ext4 filesystems: one with no stubs, one with N fake stubs (sparse files with a
// valid `released` trusted.fanrecall xattr, made without the store: the listener does not
// scan stubs, so their content is never needed). Both hold 1,000 small non-stub files. Per
// rep, for each filesystem in turn: a fresh fanrecall; the listener's start time (process
// start to its "listener ready" log line; 10 ms resolution); its VmRSS 1 s after ready
// (median of 5 samples); then open+read+close of the 1,000 non-stub files (1,000 events and
// ignore marks) and its VmRSS again.
// Targets: RSS with N stubs <= 1.2x RSS with none (idle and after the touches); start time
// with N stubs <= 1.2x start time with none ("does not grow with the number of stubs").
// Owns: its two filesystems (removed at cleanup); instances are stopped in finally.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { FanrecallInstance } from "../test/helpers/fanrecall-instance.js";
import type { Scenario } from "./context.js";
import { nowMs, readFiles, sleep, summarize } from "./measure.js";
import { compare, figure } from "./report.js";
import { listenerPid, listenerReadyEpochMs, processStartEpochMs, rssKiB, writeFakeStubs } from "./stubs.js";

const TOUCHED = 1_000;

async function rssMedian(pid: number): Promise<number> {
  const v: number[] = [];
  for (let i = 0; i < 5; i++) {
    v.push(rssKiB(pid));
    await sleep(200);
  }
  return summarize(v).median;
}

interface Probe {
  startMs: number;
  idleKiB: number;
  touchedKiB: number;
}

async function probe(fr: FanrecallInstance, reader: string, prefix: string): Promise<Probe> {
  const pid = listenerPid(fr);
  const startMs = listenerReadyEpochMs(fr, pid) - processStartEpochMs(pid);
  await sleep(1_000);
  const idleKiB = await rssMedian(pid);
  await readFiles(reader, prefix, TOUCHED, 60_000);
  await sleep(500);
  return { startMs, idleKiB, touchedKiB: await rssMedian(pid) };
}

export const scenario7: Scenario = {
  id: 7,
  title: "scale: listener memory and start time with many stubs",
  async run(ctx) {
    const stubs = 100_000;
    const reps = ctx.reps(5, 2);
    const none = await ctx.ext4(256);
    const full = await ctx.ext4(2048);
    const bucket = await ctx.bucket("scale");
    const prefixes: string[] = [];
    for (const fs of [none, full]) {
      await mkdir(join(fs.dir, "plain"));
      for (let i = 0; i < TOUCHED; i++)
        await writeFile(join(fs.dir, "plain", `p${String(i).padStart(6, "0")}`), Buffer.alloc(4096, 1));
      prefixes.push(join(fs.dir, "plain", "p"));
    }
    await mkdir(join(full.dir, "stubs"));
    const t = nowMs();
    writeFakeStubs(join(full.dir, "stubs"), stubs, 1024 * 1024);
    ctx.log(`s7: ${stubs} fake stubs made in ${((nowMs() - t) / 1000).toFixed(1)} s`);
    const results: { none: Probe[]; full: Probe[] } = { none: [], full: [] };
    for (let rep = 0; rep < reps; rep++) {
      results.none.push(
        await ctx.withFanrecall(none.dir, bucket, [], (fr) => probe(fr, ctx.tools.reader, prefixes[0])),
      );
      results.full.push(
        await ctx.withFanrecall(full.dir, bucket, [], (fr) => probe(fr, ctx.tools.reader, prefixes[1])),
      );
      const [n, f] = [results.none[rep], results.full[rep]];
      ctx.log(
        `s7 rep ${rep + 1}/${reps}: start ${n.startMs.toFixed(0)} vs ${f.startMs.toFixed(0)} ms; RSS idle ` +
          `${n.idleKiB} vs ${f.idleKiB} KiB; after ${TOUCHED} touches ${n.touchedKiB} vs ${f.touchedKiB} KiB`,
      );
    }
    const label = `${stubs / 1000}k stubs`;
    /** fanrecall's figure (with stubs) and the baseline (none) for one probe field. */
    const pair = (k: keyof Probe, unit: string, scale: number) => ({
      full: figure(
        label,
        unit,
        results.full.map((p) => p[k] / scale),
      ),
      none: figure(
        "no stubs",
        unit,
        results.none.map((p) => p[k] / scale),
      ),
    });
    const idle = pair("idleKiB", "MiB", 1024);
    const touched = pair("touchedKiB", "MiB", 1024);
    const start = pair("startMs", "ms", 1);
    return {
      reps,
      rows: [
        {
          metric: `listener RSS idle, ${label}`,
          fanrecall: idle.full,
          comparisons: [compare(idle.full, idle.none, { max: 1.2 })],
        },
        {
          metric: `RSS after ${TOUCHED} non-stub reads, ${label}`,
          fanrecall: touched.full,
          comparisons: [compare(touched.full, touched.none, { max: 1.2 })],
        },
        {
          metric: `listener start to ready, ${label}`,
          fanrecall: start.full,
          comparisons: [compare(start.full, start.none, { max: 1.2 })],
        },
      ],
      details: { stubs, ...results },
    };
  },
};
