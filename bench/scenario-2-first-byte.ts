// bench/scenario-2-first-byte.ts: time to the first 4 KiB of a released 256 MiB file.
//
// The figure is open + pread(4 KiB at 0) + close as one program sees it, after drop_caches.
// Per rep: fanrecall in range mode (re-stubbed file, fresh instance warmed up on another small
// stub: context.withBigStub); the same file under such an instance started with --mode whole, where the first access waits for a whole-file
// recall (that is "the time a whole-file recall takes" as a reader feels it); rclone and s3fs
// on a fresh mount after a stat. The bytes read are checked against the original.
// Targets: fanrecall <= rclone, and <= 1/10 of the whole-file recall.
// Owns: nothing beyond one rep (instances and mounts are stopped in finally).
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { BenchContext, BigStub, Scenario } from "./context.js";
import { dropCaches, readAt } from "./measure.js";
import { PEERS, withPeer } from "./peers.js";
import type { PeerKind } from "./peers.js";
import { compare, figure } from "./report.js";

const TIMEOUT_MS = 120_000;

async function fanrecallFirstByte(ctx: BenchContext, big: BigStub, mode: "range" | "whole"): Promise<number> {
  return ctx.withBigStub(big, ["--mode", mode], async (inst) => {
    if (!inst.output().includes(`"mode":"${mode}"`)) throw new Error(`fanrecall did not start in ${mode} mode`);
    await dropCaches();
    const r = await readAt(ctx.tools.reader, big.path, 0, 4096, TIMEOUT_MS);
    if (r.hash !== big.hashes.first) throw new Error(`fanrecall (${mode}) read wrong bytes at 0`);
    return r.ns / 1e6;
  });
}

export const scenario2: Scenario = {
  id: 2,
  title: "first byte: 4 KiB at offset 0 of a released 256 MiB file",
  async run(ctx) {
    const big = await ctx.bigStub();
    const server = await ctx.swift();
    const reps = ctx.reps(5, 2);
    const range: number[] = [];
    const whole: number[] = [];
    const peers: Record<PeerKind, number[]> = { s3fs: [], rclone: [] };
    for (let rep = 0; rep < reps; rep++) {
      range.push(await fanrecallFirstByte(ctx, big, "range"));
      whole.push(await fanrecallFirstByte(ctx, big, "whole"));
      for (const kind of PEERS) {
        await withPeer(kind, server, big.bucket, async (m) => {
          const path = join(m.dir, big.key);
          await stat(path);
          await dropCaches();
          const r = await readAt(ctx.tools.reader, path, 0, 4096, TIMEOUT_MS);
          if (r.hash !== big.hashes.first) throw new Error(`${kind} read wrong bytes at 0`);
          peers[kind].push(r.ns / 1e6);
        });
      }
      ctx.log(
        `s2 rep ${rep + 1}/${reps}: range ${range[rep].toFixed(1)}, whole ${whole[rep].toFixed(1)}, ` +
          `s3fs ${peers.s3fs[rep].toFixed(1)}, rclone ${peers.rclone[rep].toFixed(1)} ms`,
      );
    }
    const f = figure("fanrecall", "ms", range);
    return {
      reps,
      rows: [
        {
          scenario: 2,
          metric: "first 4 KiB (open+pread), cold",
          fanrecall: f,
          comparisons: [
            compare(f, figure("rclone", "ms", peers.rclone), { max: 1.0 }),
            compare(f, figure("whole-file recall (--mode whole)", "ms", whole), { max: 0.1 }),
            compare(f, figure("s3fs", "ms", peers.s3fs)),
          ],
        },
      ],
    };
  },
};
