// bench/scenario-4-second-read.ts: reading a file again after fanrecall recalled it, against
// a never-archived file of the same size on the same watched filesystem.
//
// Per rep: re-stub, fresh instance, one full read (the recall), then with the instance still
// running: warm (page cache) reads of the recalled file and of the never-archived twin,
// alternated, 5 of each, and cold reads (drop_caches before each) of both. Reads are
// sequential with 128 KiB read()s (cat's size), so any per-event cost would show.
// For reference, rclone's and s3fs's second reads (fresh mount, one full read, then the
// timed one) are reported too; they go through FUSE.
// Target: fanrecall's second read >= 0.9x the never-archived file's, warm and cold.
// Owns: nothing beyond one rep (instances and mounts are stopped in finally).
import { join } from "node:path";
import type { Scenario } from "./context.js";
import { MiB, dropCaches, mibPerS, readSeq, summarize } from "./measure.js";
import { PEERS, withPeer } from "./peers.js";
import type { PeerKind } from "./peers.js";
import { compare, figure } from "./report.js";

const BS = 128 * 1024;
const TIMEOUT_MS = 180_000;
const WARM_INNER = 5;

export const scenario4: Scenario = {
  id: 4,
  title: "second read after recall vs a never-archived file",
  async run(ctx) {
    const big = await ctx.bigStub();
    const reader = ctx.tools.reader;
    const reps = ctx.reps(5, 2);
    const warm = { fr: [] as number[], plain: [] as number[] };
    const cold = { fr: [] as number[], plain: [] as number[] };
    const peers: Record<PeerKind, number[]> = { s3fs: [], rclone: [] };
    const read = async (path: string, hash = false) => {
      const r = await readSeq(reader, path, { bs: BS, hash, timeoutMs: TIMEOUT_MS });
      return { mibs: mibPerS(r.bytes, r.totalNs / 1e6), hash: r.hash };
    };
    for (let rep = 0; rep < reps; rep++) {
      await ctx.withBigStub(big, [], async () => {
        await dropCaches();
        const first = await read(big.path, true);
        if (first.hash !== big.hashes.full) throw new Error("the recall read wrong content");
        await read(big.plainPath);
        const w = { fr: [] as number[], plain: [] as number[] };
        for (let i = 0; i < WARM_INNER; i++) {
          w.fr.push((await read(big.path)).mibs);
          w.plain.push((await read(big.plainPath)).mibs);
        }
        warm.fr.push(summarize(w.fr).median);
        warm.plain.push(summarize(w.plain).median);
        await dropCaches();
        cold.fr.push((await read(big.path)).mibs);
        await dropCaches();
        cold.plain.push((await read(big.plainPath)).mibs);
      });
      for (const kind of PEERS) {
        await withPeer(kind, big.server, big.bucket, async (m) => {
          const path = join(m.dir, big.key);
          await readSeq(reader, path, { bs: MiB, timeoutMs: TIMEOUT_MS });
          peers[kind].push((await read(path)).mibs);
        });
      }
      ctx.log(
        `s4 rep ${rep + 1}/${reps}: warm ${warm.fr[rep].toFixed(0)} vs ${warm.plain[rep].toFixed(0)}, ` +
          `cold ${cold.fr[rep].toFixed(0)} vs ${cold.plain[rep].toFixed(0)} MiB/s; ` +
          `second read s3fs ${peers.s3fs[rep].toFixed(0)}, rclone ${peers.rclone[rep].toFixed(0)} MiB/s`,
      );
    }
    const fw = figure("fanrecall", "MiB/s", warm.fr);
    const fc = figure("fanrecall", "MiB/s", cold.fr);
    return {
      reps,
      rows: [
        {
          metric: "second read 256 MiB, warm (128 KiB reads)",
          fanrecall: fw,
          comparisons: [
            compare(fw, figure("never-archived file", "MiB/s", warm.plain), { min: 0.9 }),
            compare(fw, figure("rclone second read", "MiB/s", peers.rclone)),
            compare(fw, figure("s3fs second read", "MiB/s", peers.s3fs)),
          ],
          note: `median of ${WARM_INNER} alternated reads per rep; peers: second read right after a first full read`,
        },
        {
          metric: "second read 256 MiB, caches dropped",
          fanrecall: fc,
          comparisons: [compare(fc, figure("never-archived file", "MiB/s", cold.plain), { min: 0.9 })],
        },
      ],
    };
  },
};
