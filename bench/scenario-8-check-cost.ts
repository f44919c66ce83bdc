// bench/scenario-8-check-cost.ts: what the listener's own check of recalled bytes costs
// (verify before allow: every recalled byte hashed by the listener against the stub's trusted
// hashes before the reader goes on). The full first read of scenario 1 (released 256 MiB
// file, fresh instance, caches dropped, 1 MiB sequential reads, content hash checked), with
// the check (the default) and without it (FANRECALL_CHECK_RECALLED_BYTES=false, which exists
// for this measurement only), interleaved per rep, and in the other order every other rep, so
// drift hits both alike (contest.ts).
// Target: with the check >= 0.95x the throughput without it.
// Owns: nothing beyond one rep (instances are stopped in finally); restores the env var.
import type { Scenario } from "./context.js";
import { fullRead, runContest } from "./contest.js";

const ENV = "FANRECALL_CHECK_RECALLED_BYTES";

export const scenario8: Scenario = {
  id: 8,
  title: "full first read of a released 256 MiB file with and without the listener's byte check",
  async run(ctx) {
    const before = process.env[ENV];
    const big = await ctx.bigStub();
    const read = fullRead(ctx, big.hashes.full);
    // `fanrecall start` hands its environment to the listener (and reads it at start).
    const withCheck = (check: boolean) => () => {
      process.env[ENV] = String(check);
      return ctx.withBigStub(big, [], () => read(check ? "checked" : "unchecked", big.path));
    };
    try {
      return await runContest(ctx, {
        scenario: 8,
        metric: "full first read 256 MiB, cold, listener checks recalled bytes",
        unit: "MiB/s",
        fanrecall: withCheck(true),
        against: [{ label: "same without the check", target: { min: 0.95 }, measure: withCheck(false) }],
        alternate: true,
      });
    } finally {
      if (before === undefined) delete process.env[ENV];
      else process.env[ENV] = before;
    }
  },
};
