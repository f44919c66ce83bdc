// bench/scenario-1-full-read.ts: full first read of a released 256 MiB file, caches dropped.
//
// Per rep, interleaved so drift hits every contender alike (contest.ts): (a) fanrecall: the
// file made a released stub again, a fresh instance (no manifest or chunk cached in the recall
// service) warmed up by recalling another small stub (context.withBigStub), drop_caches, one
// sequential read with 1 MiB read()s, and then the whole file must be populated; (b) a
// single-stream minio-js GET of the same object to a local file after drop_caches; (c) s3fs
// and rclone: a fresh mount, stat, drop_caches, the same 1 MiB sequential read. Every read's
// content hash is checked against the original file, so a fast wrong answer fails the scenario.
// Targets: fanrecall >= 1.2x minio-js GET and >= 1.0x s3fs's and rclone's throughput.
// Owns: nothing beyond one rep (instances and mounts are stopped in finally).
import type { Scenario } from "./context.js";
import { fanrecallRead, fullRead, peer, runContest } from "./contest.js";
import { dropCaches, mibPerS } from "./measure.js";
import { minioGet } from "./peers.js";

export const scenario1: Scenario = {
  id: 1,
  title: "full first read of a released 256 MiB file, caches dropped",
  async run(ctx) {
    const big = await ctx.bigStub();
    const read = fullRead(ctx, big.hashes.full);
    const minio = async () => {
      await dropCaches();
      return mibPerS(big.size, await minioGet(big.server, big.bucket, big.key, big.size));
    };
    return runContest(ctx, {
      scenario: 1,
      metric: "full first read 256 MiB, cold (1 MiB reads)",
      unit: "MiB/s",
      fanrecall: fanrecallRead(ctx, big, read, (bytes) => {
        if (bytes !== big.size) throw new Error(`after the read: ${bytes} of ${big.size} bytes populated`);
      }),
      against: [
        { label: "minio-js GET", target: { min: 1.2 }, measure: minio },
        peer(big, "s3fs", read, { min: 1.0 }),
        peer(big, "rclone", read, { min: 1.0 }),
      ],
    });
  },
};
