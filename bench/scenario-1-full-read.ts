// bench/scenario-1-full-read.ts: full first read of a released 256 MiB file, caches dropped,
// on Swift and on s3rver (issue 14: the same figure on both stores, in the same run).
//
// Per store, the big stub archived there (context.bigStub(kind)), and per rep, interleaved so
// drift hits every contender alike (contest.ts): (a) fanrecall: the file made a released stub
// again, a fresh instance pointed at that store (no manifest or chunk cached in the recall
// service) warmed up by recalling another small stub (context.withBigStub), drop_caches, one
// sequential read with 1 MiB read()s, and then the whole file must be populated; (b) a
// single-stream minio-js GET of the same object from the same store to a local file after
// drop_caches; (c) on Swift only: s3fs and rclone: a fresh mount, stat, drop_caches, the same
// 1 MiB sequential read. Every read's content hash is checked against the original file, so a
// fast wrong answer fails the scenario.
// Targets: fanrecall >= 1.0x minio-js GET on each store (stretch 1.2x, shown in the row's
// note), >= 1.0x s3fs's and rclone's throughput.
// Owns: nothing beyond one rep (instances and mounts are stopped in finally).
import type { BenchContext, ScenarioOutcome, Scenario, StoreKind } from "./context.js";
import { fanrecallRead, fullRead, peer, runContest } from "./contest.js";
import { dropCaches, mibPerS } from "./measure.js";
import { minioGet } from "./peers.js";

const STRETCH = 1.2;

async function fullReadOn(ctx: BenchContext, kind: StoreKind): Promise<ScenarioOutcome> {
  const big = await ctx.bigStub(kind);
  const read = fullRead(ctx, big.hashes.full);
  const minio = async () => {
    await dropCaches();
    return mibPerS(big.size, await minioGet(big.server, big.bucket, big.key, big.size));
  };
  const outcome = await runContest(ctx, {
    scenario: 1,
    metric: `full first read 256 MiB, cold (1 MiB reads), ${kind}`,
    unit: "MiB/s",
    fanrecall: fanrecallRead(ctx, big, read, (bytes) => {
      if (bytes !== big.size) throw new Error(`after the read: ${bytes} of ${big.size} bytes populated`);
    }),
    against: [
      { label: `minio-js GET (${kind})`, target: { min: 1.0 }, measure: minio },
      ...(kind === "swift" ? [peer(big, "s3fs", read, { min: 1.0 }), peer(big, "rclone", read, { min: 1.0 })] : []),
    ],
  });
  return {
    ...outcome,
    rows: outcome.rows.map((row) => {
      const ratio = row.comparisons[0].ratio;
      return { ...row, note: `stretch >= ${STRETCH}x minio-js GET: ${ratio >= STRETCH ? "met" : "not met"}` };
    }),
  };
}

export const scenario1: Scenario = {
  id: 1,
  title: "full first read of a released 256 MiB file, caches dropped, on Swift and on s3rver",
  async run(ctx) {
    const swift = await fullReadOn(ctx, "swift");
    const s3rver = await fullReadOn(ctx, "s3rver");
    return { reps: swift.reps, rows: [...swift.rows, ...s3rver.rows] };
  },
};
