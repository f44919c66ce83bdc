// bench/scenario-3-random-access.ts: one 4 KiB read at offset 200 MiB of a released file that
// nothing has touched yet.
//
// Per rep (contest.ts): fanrecall (re-stubbed file, fresh instance warmed up on another small
// stub, drop_caches) and rclone and s3fs (fresh mount, stat, drop_caches), each timing
// open + pread(4 KiB at 200 MiB) + close. The bytes are checked against the original.
// fanrecall's populated bytes after the read are reported (range recall should fetch a chunk
// plus its readahead, not the file).
// Target: fanrecall <= rclone.
// Owns: nothing beyond one rep (instances and mounts are stopped in finally).
import type { Scenario } from "./context.js";
import { RANDOM_OFFSET } from "./context.js";
import { fanrecallRead, peer, pread4KiB, runContest } from "./contest.js";
import { MiB, summarize } from "./measure.js";

export const scenario3: Scenario = {
  id: 3,
  title: "random access: 4 KiB at offset 200 MiB of a released, untouched file",
  async run(ctx) {
    const big = await ctx.bigStub();
    const read = pread4KiB(ctx, RANDOM_OFFSET, big.hashes.random);
    const populatedMiB: number[] = [];
    const outcome = await runContest(ctx, {
      scenario: 3,
      metric: "4 KiB at 200 MiB (open+pread), cold",
      unit: "ms",
      fanrecall: fanrecallRead(ctx, big, read, (bytes) => {
        populatedMiB.push(bytes / MiB);
        ctx.log(`s3: ${bytes / MiB} MiB of 256 populated right after fanrecall's read`);
      }),
      against: [peer(big, "rclone", read, { max: 1.0 }), peer(big, "s3fs", read)],
    });
    const note = `fanrecall: ${summarize(populatedMiB).median} MiB of 256 populated right after the read (readahead waits in memory)`;
    return { ...outcome, rows: outcome.rows.map((row) => ({ ...row, note })), details: { populatedMiB } };
  },
};
