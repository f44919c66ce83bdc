// bench/scenario-8-check-cost.ts: what the listener's own check of recalled bytes costs
// (verify before allow: every recalled byte hashed by the listener against the stub's trusted
// hashes before the reader goes on). The full first read of scenario 1 (released 256 MiB
// file, fresh instance, caches dropped, 1 MiB sequential reads, content hash checked), with
// the check (the default) and without it (FANRECALL_CHECK_RECALLED_BYTES=false, which exists
// for this measurement only), interleaved per rep so drift hits both alike.
// Target: with the check >= 0.95x the throughput without it.
// Owns: nothing beyond one rep (instances are stopped in finally); restores the env var.
import type { Scenario } from "./context.js";
import { MiB, dropCaches, mibPerS, readSeq } from "./measure.js";
import { compare, figure } from "./report.js";

const READ_TIMEOUT_MS = 180_000;
const ENV = "FANRECALL_CHECK_RECALLED_BYTES";

export const scenario8: Scenario = {
  id: 8,
  title: "full first read of a released 256 MiB file with and without the listener's byte check",
  async run(ctx) {
    const big = await ctx.bigStub();
    const reps = ctx.reps(5, 2);
    const runs: Record<"checked" | "unchecked", number[]> = { checked: [], unchecked: [] };
    const before = process.env[ENV];
    try {
      for (let rep = 0; rep < reps; rep++) {
        for (const which of rep % 2 === 0 ? (["checked", "unchecked"] as const) : (["unchecked", "checked"] as const)) {
          // `fanrecall start` hands its environment to the listener (and reads it at start).
          process.env[ENV] = which === "checked" ? "true" : "false";
          await ctx.withBigStub(big, [], async () => {
            await dropCaches();
            const r = await readSeq(ctx.tools.reader, big.path, { bs: MiB, hash: true, timeoutMs: READ_TIMEOUT_MS });
            if (r.hash !== big.hashes.full) throw new Error(`${which} read wrong content`);
            runs[which].push(mibPerS(r.bytes, r.totalNs / 1e6));
          });
        }
        ctx.log(
          `s8 rep ${rep + 1}/${reps}: checked ${runs.checked[rep].toFixed(0)}, unchecked ${runs.unchecked[rep].toFixed(0)} MiB/s`,
        );
      }
    } finally {
      if (before === undefined) delete process.env[ENV];
      else process.env[ENV] = before;
    }
    const checked = figure("fanrecall", "MiB/s", runs.checked);
    return {
      reps,
      rows: [
        {
          scenario: 8,
          metric: "full first read 256 MiB, cold, listener checks recalled bytes",
          fanrecall: checked,
          comparisons: [compare(checked, figure("same without the check", "MiB/s", runs.unchecked), { min: 0.95 })],
        },
      ],
    };
  },
};
