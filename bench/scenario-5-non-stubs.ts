// bench/scenario-5-non-stubs.ts: what fanrecall costs files that are not stubs.
//
// A watched ext4 holds N small files (4 KiB) and a 256 MiB file, none archived. Per rep, all
// warm (page cache): (1) no listener: open+read+close of the N files and dd bs=4k of the big
// file; (2) bench/min-listener.c (filesystem mark, FAN_ALLOW at once, no ignore marks): the
// same small-file pass and a 1-byte pread latency loop, giving the kernel floor per event;
// (3) bench/min-listener.c --ignore, holding the same marks as fanrecall (the filesystem mark
// and an evictable ignore mark on every file it answers): a first pass, then warm passes and
// warm dd runs, the kernel's own cost of those marks; (4) a fresh fanrecall: the first pass
// (first touch: one event per file, answered and ignore-marked), then warm passes and warm dd
// runs with its ignore marks in place.
// First-touch cost per file = (first pass - no-listener pass) / N; the floor per event =
// (min-listener pass - no-listener pass) / events the min listener answered.
// Targets: warm small files and dd <= 1.1x no listener and <= 1.05x the min listener holding
// the same marks; first touch <= 2x the floor.
// Owns: its filesystem (removed at cleanup) and the min listener child (SIGTERM, then kill).
import { writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { spawnChild } from "../test/helpers/child.js";
import type { BenchContext, Scenario } from "./context.js";
import { writeRandomFile } from "./context.js";
import { MiB, ddRead, preadLatency, readFiles, sleep, summarize } from "./measure.js";
import { compare, figure } from "./report.js";

const INNER = 3;
const TIMEOUT_MS = 120_000;

/** Runs fn while bench/min-listener watches dir's filesystem; returns fn's value and the events answered. */
async function withMinListener<T>(
  ctx: BenchContext,
  dir: string,
  fn: () => Promise<T>,
  flags: readonly string[] = [],
): Promise<{ value: T; events: number }> {
  const l = spawnChild([ctx.tools.minListener, ...flags, dir], { timeoutMs: 10 * 60_000 });
  let out = "";
  // Buffers, not setEncoding: the child helper concatenates the same stream's Buffers.
  l.child.stdout?.on("data", (b: Buffer) => (out += b.toString()));
  try {
    const deadline = Date.now() + 10_000;
    while (!out.includes("ready\n")) {
      if (l.child.exitCode !== null || Date.now() > deadline) throw new Error(`min-listener did not start: ${out}`);
      await sleep(10);
    }
    const value = await fn();
    l.child.kill("SIGTERM");
    const r = await l.result;
    const m = /events (\d+)/.exec(r.stdout.toString());
    if (!m) throw new Error(`min-listener printed no count: ${r.stdout.toString()} ${r.stderr}`);
    return { value, events: Number(m[1]) };
  } finally {
    l.kill();
  }
}

async function median(n: number, fn: () => Promise<number>): Promise<number> {
  const v: number[] = [];
  for (let i = 0; i < n; i++) v.push(await fn());
  return summarize(v).median;
}

export const scenario5: Scenario = {
  id: 5,
  title: "files that are not stubs on a watched filesystem",
  async run(ctx) {
    const n = ctx.opts.quick ? 2_000 : 10_000;
    const reps = ctx.reps(5, 2);
    const fs = await ctx.ext4(1024);
    const bucket = await ctx.bucket("plain");
    await mkdir(join(fs.dir, "small"));
    const prefix = join(fs.dir, "small", "f");
    for (let i = 0; i < n; i++) writeFileSync(`${prefix}${String(i).padStart(6, "0")}`, randomBytes(4096));
    const ddFile = join(fs.dir, "dd.bin");
    writeRandomFile(ddFile, 256 * MiB);
    const reader = ctx.tools.reader;
    const files = async () => (await readFiles(reader, prefix, n, TIMEOUT_MS)).ns / 1e6;
    const dd = () => ddRead(ddFile, "4k", TIMEOUT_MS);
    const r = { baseFiles: [] as number[], baseDd: [] as number[], minFiles: [] as number[] };
    /** The min listener with fanrecall's marks (ignore marks too), warm. */
    const same = { files: [] as number[], dd: [] as number[] };
    const s = { minEvents: [] as number[], minPerEventUs: [] as number[], latFloorUs: [] as number[] };
    const f = {
      firstFiles: [] as number[],
      perFileUs: [] as number[],
      warmFiles: [] as number[],
      warmDd: [] as number[],
    };
    for (let rep = 0; rep < reps; rep++) {
      await files();
      await dd();
      const baseFiles = await median(INNER, files);
      r.baseFiles.push(baseFiles);
      r.baseDd.push(await median(INNER, dd));
      const baseLat = await preadLatency(reader, ddFile, 10_000, TIMEOUT_MS);
      const min = await withMinListener(ctx, fs.dir, async () => ({
        files: await files(),
        lat: await preadLatency(reader, ddFile, 10_000, TIMEOUT_MS),
      }));
      r.minFiles.push(min.value.files);
      const passEvents = min.events - 10_000;
      s.minEvents.push(passEvents);
      s.minPerEventUs.push(((min.value.files - baseFiles) * 1000) / passEvents);
      s.latFloorUs.push((min.value.lat.medianNs - baseLat.medianNs) / 1000);
      const marked = await withMinListener(
        ctx,
        fs.dir,
        async () => {
          await files();
          await dd();
          return { files: await median(INNER, files), dd: await median(INNER, dd) };
        },
        ["--ignore"],
      );
      same.files.push(marked.value.files);
      same.dd.push(marked.value.dd);
      await ctx.withFanrecall(fs.dir, bucket, [], async () => {
        const first = await files();
        f.firstFiles.push(first);
        f.perFileUs.push(((first - baseFiles) * 1000) / n);
        f.warmFiles.push(await median(INNER, files));
        await dd();
        f.warmDd.push(await median(INNER, dd));
      });
      ctx.log(
        `s5 rep ${rep + 1}/${reps}: files base ${baseFiles.toFixed(1)} min ${min.value.files.toFixed(1)} ` +
          `first ${f.firstFiles[rep].toFixed(1)} warm ${f.warmFiles[rep].toFixed(1)} ms; dd base ` +
          `${r.baseDd[rep].toFixed(1)} warm ${f.warmDd[rep].toFixed(1)} ms; same marks: files ` +
          `${same.files[rep].toFixed(1)} dd ${same.dd[rep].toFixed(1)} ms; per event: min ` +
          `${s.minPerEventUs[rep].toFixed(1)} us (${passEvents} events), fanrecall first touch ` +
          `${f.perFileUs[rep].toFixed(1)} us/file`,
      );
    }
    const warmFiles = figure("fanrecall", "ms", f.warmFiles);
    const warmDd = figure("fanrecall", "ms", f.warmDd);
    const perFile = figure("fanrecall", "us/file", f.perFileUs);
    const perFileNote =
      `min listener answered ${summarize(s.minEvents).median} events for ${n} files; ` +
      `1-byte pread latency added by the min listener: ${summarize(s.latFloorUs).median.toFixed(1)} us/event`;
    return {
      reps,
      rows: [
        {
          metric: `open+read+close ${n} x 4 KiB non-stubs, warm`,
          fanrecall: warmFiles,
          comparisons: [
            compare(warmFiles, figure("min listener, same marks", "ms", same.files), { max: 1.05 }),
            compare(warmFiles, figure("no listener", "ms", r.baseFiles), { max: 1.1 }),
          ],
        },
        {
          metric: "dd 256 MiB bs=4k non-stub, warm",
          fanrecall: warmDd,
          comparisons: [
            compare(warmDd, figure("min listener, same marks", "ms", same.dd), { max: 1.05 }),
            compare(warmDd, figure("no listener", "ms", r.baseDd), { max: 1.1 }),
          ],
        },
        {
          metric: "first touch per non-stub file",
          fanrecall: perFile,
          comparisons: [
            compare(perFile, figure("min listener per event", "us", s.minPerEventUs), { max: 2 }),
            compare(
              perFile,
              figure(
                "min listener per file",
                "us",
                r.minFiles.map((m, i) => ((m - r.baseFiles[i]) * 1000) / n),
              ),
            ),
          ],
          note: perFileNote,
        },
      ],
      details: { ...r, ...s, ...f, sameMarks: same, files: n },
    };
  },
};
