// bench/scenario-1-full-read.ts: full first read of a released 256 MiB file, caches dropped.
//
// Per rep, interleaved so drift hits every contender alike: (a) fanrecall: the file made a
// released stub again, a fresh instance (no manifest or chunk cached in the recall service)
// warmed up by recalling another small stub (context.withBigStub), drop_caches, one sequential read with 1 MiB read()s; (b) a single-stream minio-js GET of the
// same object to a local file after drop_caches; (c) s3fs and rclone: a fresh mount, stat,
// drop_caches, the same 1 MiB sequential read. Every read's content hash is checked against
// the original file, so a fast wrong answer fails the scenario.
// Targets: fanrecall >= 1.2x minio-js GET and >= 1.0x s3fs's and rclone's throughput.
// Owns: nothing beyond one rep (instances and mounts are stopped in finally).
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { Scenario } from "./context.js";
import { MiB, dropCaches, mibPerS, readSeq } from "./measure.js";
import { PEERS, minioGet, withPeer } from "./peers.js";
import type { PeerKind } from "./peers.js";
import { compare, figure } from "./report.js";

const READ_TIMEOUT_MS = 180_000;

export const scenario1: Scenario = {
  id: 1,
  title: "full first read of a released 256 MiB file, caches dropped",
  async run(ctx) {
    const big = await ctx.bigStub();
    const server = await ctx.swift();
    const reader = ctx.tools.reader;
    const reps = ctx.reps(5, 2);
    const fr: number[] = [];
    const minio: number[] = [];
    const peers: Record<PeerKind, number[]> = { s3fs: [], rclone: [] };
    const checkHash = (who: string, hash: string) => {
      if (hash !== big.hashes.full) throw new Error(`${who} read wrong content (hash ${hash} != ${big.hashes.full})`);
    };
    for (let rep = 0; rep < reps; rep++) {
      await ctx.withBigStub(big, [], async (inst) => {
        await dropCaches();
        const r = await readSeq(reader, big.path, { bs: MiB, hash: true, timeoutMs: READ_TIMEOUT_MS });
        checkHash("fanrecall", r.hash);
        fr.push(mibPerS(r.bytes, r.totalNs / 1e6));
        const [st] = await inst.status([big.path]);
        if (st.populatedBytes !== big.size) throw new Error(`after the read: ${JSON.stringify(st)}`);
      });
      await dropCaches();
      minio.push(mibPerS(big.size, await minioGet(server, big.bucket, big.key, big.size)));
      for (const kind of PEERS) {
        await withPeer(kind, server, big.bucket, async (m) => {
          const path = join(m.dir, big.key);
          await stat(path);
          await dropCaches();
          const r = await readSeq(reader, path, { bs: MiB, hash: true, timeoutMs: READ_TIMEOUT_MS });
          checkHash(kind, r.hash);
          peers[kind].push(mibPerS(r.bytes, r.totalNs / 1e6));
        });
      }
      ctx.log(
        `s1 rep ${rep + 1}/${reps}: fanrecall ${fr[rep].toFixed(0)}, minio ${minio[rep].toFixed(0)}, ` +
          `s3fs ${peers.s3fs[rep].toFixed(0)}, rclone ${peers.rclone[rep].toFixed(0)} MiB/s`,
      );
    }
    const f = figure("fanrecall", "MiB/s", fr);
    return {
      reps,
      rows: [
        {
          scenario: 1,
          metric: "full first read 256 MiB, cold (1 MiB reads)",
          fanrecall: f,
          comparisons: [
            compare(f, figure("minio-js GET", "MiB/s", minio), { min: 1.2 }),
            compare(f, figure("s3fs", "MiB/s", peers.s3fs), { min: 1.0 }),
            compare(f, figure("rclone", "MiB/s", peers.rclone), { min: 1.0 }),
          ],
        },
      ],
    };
  },
};
