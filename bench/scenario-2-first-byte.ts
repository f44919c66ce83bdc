// bench/scenario-2-first-byte.ts: time to the first 4 KiB of a released 256 MiB file.
//
// The figure is open + pread(4 KiB at 0) + close as one program sees it, after drop_caches.
// Per rep (contest.ts): fanrecall in range mode (re-stubbed file, fresh instance warmed up on
// another small stub: context.withBigStub); rclone on a fresh mount after a stat; the same
// file under such an instance started with --mode whole, where the first access waits for a
// whole-file recall (that is "the time a whole-file recall takes" as a reader feels it); s3fs
// like rclone. The bytes read are checked against the original.
// Targets: fanrecall <= rclone, and <= 1/10 of the whole-file recall.
// Owns: nothing beyond one rep (instances and mounts are stopped in finally).
import type { Scenario } from "./context.js";
import { peer, pread4KiB, runContest } from "./contest.js";

export const scenario2: Scenario = {
  id: 2,
  title: "first byte: 4 KiB at offset 0 of a released 256 MiB file",
  async run(ctx) {
    const big = await ctx.bigStub();
    const read = pread4KiB(ctx, 0, big.hashes.first);
    const inMode = (mode: "range" | "whole") => () =>
      ctx.withBigStub(big, ["--mode", mode], (inst) => {
        if (!inst.output().includes(`"mode":"${mode}"`)) throw new Error(`fanrecall did not start in ${mode} mode`);
        return read(`fanrecall (${mode})`, big.path);
      });
    return runContest(ctx, {
      scenario: 2,
      metric: "first 4 KiB (open+pread), cold",
      unit: "ms",
      fanrecall: inMode("range"),
      against: [
        peer(big, "rclone", read, { max: 1.0 }),
        { label: "whole-file recall (--mode whole)", target: { max: 0.1 }, measure: inMode("whole") },
        peer(big, "s3fs", read),
      ],
    });
  },
};
