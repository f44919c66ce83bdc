// bench/scenario-3-random-access.ts: one 4 KiB read at offset 200 MiB of a released file that
// nothing has touched yet.
//
// Per rep: fanrecall (re-stubbed file, fresh instance warmed up on another small stub,
// drop_caches) and rclone and s3fs (fresh
// mount, stat, drop_caches), each timing open + pread(4 KiB at 200 MiB) + close. The bytes
// are checked against the original. fanrecall's populated bytes after the read are reported
// (range recall should fetch a chunk plus its readahead, not the file).
// Target: fanrecall <= rclone.
// Owns: nothing beyond one rep (instances and mounts are stopped in finally).
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { Scenario } from "./context.js";
import { RANDOM_OFFSET } from "./context.js";
import { MiB, dropCaches, readAt, summarize } from "./measure.js";
import { PEERS, withPeer } from "./peers.js";
import type { PeerKind } from "./peers.js";
import { compare, figure } from "./report.js";

const TIMEOUT_MS = 120_000;

export const scenario3: Scenario = {
  id: 3,
  title: "random access: 4 KiB at offset 200 MiB of a released, untouched file",
  async run(ctx) {
    const big = await ctx.bigStub();
    const server = await ctx.swift();
    const reps = ctx.reps(5, 2);
    const fr: number[] = [];
    const populatedMiB: number[] = [];
    const peers: Record<PeerKind, number[]> = { s3fs: [], rclone: [] };
    for (let rep = 0; rep < reps; rep++) {
      await ctx.withBigStub(big, [], async (inst) => {
        await dropCaches();
        const r = await readAt(ctx.tools.reader, big.path, RANDOM_OFFSET, 4096, TIMEOUT_MS);
        if (r.hash !== big.hashes.random) throw new Error("fanrecall read wrong bytes at 200 MiB");
        fr.push(r.ns / 1e6);
        const [st] = await inst.status([big.path]);
        populatedMiB.push(st.populatedBytes / MiB);
      });
      for (const kind of PEERS) {
        await withPeer(kind, server, big.bucket, async (m) => {
          const path = join(m.dir, big.key);
          await stat(path);
          await dropCaches();
          const r = await readAt(ctx.tools.reader, path, RANDOM_OFFSET, 4096, TIMEOUT_MS);
          if (r.hash !== big.hashes.random) throw new Error(`${kind} read wrong bytes at 200 MiB`);
          peers[kind].push(r.ns / 1e6);
        });
      }
      ctx.log(
        `s3 rep ${rep + 1}/${reps}: fanrecall ${fr[rep].toFixed(1)} ms (${populatedMiB[rep]} MiB populated), ` +
          `s3fs ${peers.s3fs[rep].toFixed(1)}, rclone ${peers.rclone[rep].toFixed(1)} ms`,
      );
    }
    const f = figure("fanrecall", "ms", fr);
    const pop = summarize(populatedMiB);
    return {
      reps,
      rows: [
        {
          scenario: 3,
          metric: "4 KiB at 200 MiB (open+pread), cold",
          fanrecall: f,
          comparisons: [
            compare(f, figure("rclone", "ms", peers.rclone), { max: 1.0 }),
            compare(f, figure("s3fs", "ms", peers.s3fs)),
          ],
          note: `fanrecall: ${pop.median} MiB of 256 populated right after the read (readahead waits in memory)`,
        },
      ],
      details: { populatedMiB },
    };
  },
};
