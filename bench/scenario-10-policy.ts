// bench/scenario-10-policy.ts: one pass of the space manager over a big filesystem.
//
// FILES empty files in 1,000 directories on an ext4 made with enough inodes (a 20 GiB sparse
// image: mkfs's 1 inode per 16 KiB gives about 1.3 million), watched by a real fanrecall.
// `fanrecall policy --once --dry-run --json --min-size 0 DIR` under watermarks that hold: no
// action, but every file is walked by fd and, with --min-size 0, has its pin and stub state
// read (the worst case: by default files below 1 MiB are not even looked at). Measured: the
// pass's wall time and the policy process's peak RSS (GNU time's maximum resident set size,
// the kernel's VmHWM at exit). Baseline in the same run: `find DIR -type f | wc -l`.
// Targets: at most 120 s, and less than 256 MiB.
// Owns: its filesystem (removed at cleanup); the instance is stopped in finally.
import { closeSync, mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import { runChild } from "../test/helpers/child.js";
import { BIN } from "../test/helpers/fanrecall-instance.js";
import type { Scenario } from "./context.js";
import { nowMs } from "./measure.js";
import { compare, figure } from "./report.js";

const PER_DIR = 1_000;
const LIMIT_S = 120;
const LIMIT_MIB = 256;

function makeTree(root: string, files: number): void {
  for (let i = 0; i < files; i++) {
    const dir = join(root, `d${String(Math.floor(i / PER_DIR)).padStart(4, "0")}`);
    if (i % PER_DIR === 0) mkdirSync(dir, { recursive: true });
    closeSync(openSync(join(dir, `f${String(i % PER_DIR).padStart(4, "0")}`), "w", 0o644));
  }
}

/** Seconds and peak RSS (MiB) of one command, by GNU time. */
async function timed(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<{ s: number; mib: number; out: Buffer }> {
  const t = nowMs();
  const r = await runChild(["/usr/bin/time", "-f", "fanrecall-bench-rss %M", ...argv], { timeoutMs: 900_000, env });
  const s = (nowMs() - t) / 1000;
  const m = /fanrecall-bench-rss (\d+)/.exec(r.stderr);
  if (r.code !== 0 || !m) throw new Error(`${argv.join(" ")} failed (${r.code}): ${r.stderr.slice(-2000)}`);
  return { s, mib: Number(m[1]) / 1024, out: r.stdout };
}

export const scenario10: Scenario = {
  id: 10,
  title: "policy: one dry-run pass over 1,000,000 files (no action), wall time and peak RSS",
  async run(ctx) {
    const reps = ctx.reps(2, 1);
    const files = ctx.reps(1_000_000, 100_000);
    const fs = await ctx.ext4(20 * 1024);
    const root = join(fs.dir, "tree");
    const t = nowMs();
    makeTree(root, files);
    ctx.log(`s10: ${files} files made in ${((nowMs() - t) / 1000).toFixed(1)} s`);
    const bucket = await ctx.bucket("policy");
    const passS: number[] = [];
    const rssMiB: number[] = [];
    const findS: number[] = [];
    await ctx.withFanrecall(fs.dir, bucket, [], async (fr) => {
      const env = { ...process.env, FANRECALL_RUN_DIR: fr.runDir };
      for (let rep = 0; rep < reps; rep++) {
        const find = await timed(["sh", "-c", 'find "$0" -type f | wc -l', root], env);
        if (Number(find.out.toString().trim()) !== files) throw new Error(`find counted ${find.out.toString()}`);
        const args = ["policy", "--once", "--dry-run", "--json", "--min-size", "0", root];
        const pass = await timed([process.execPath, BIN, ...args], env);
        const lines = pass.out.toString().trim().split("\n");
        if (lines.length !== 1 || !lines[0].includes('"summary":true'))
          throw new Error(`actions: ${lines.slice(0, 3).join(" ")}`);
        passS.push(pass.s);
        rssMiB.push(pass.mib);
        findS.push(find.s);
        ctx.log(
          `s10 rep ${rep + 1}/${reps}: pass ${pass.s.toFixed(1)} s, ${pass.mib.toFixed(0)} MiB; find ${find.s.toFixed(1)} s`,
        );
      }
    });
    const wall = figure("policy pass", "s", passS);
    const rss = figure("policy peak RSS", "MiB", rssMiB);
    return {
      reps,
      rows: [
        {
          metric: `policy pass over ${files / 1000}k files (s)`,
          fanrecall: wall,
          comparisons: [
            compare(wall, figure(`the ${LIMIT_S} s limit`, "s", [LIMIT_S]), { max: 1 }),
            compare(wall, figure("find -type f | wc -l", "s", findS)),
          ],
        },
        {
          metric: "policy peak RSS (MiB)",
          fanrecall: rss,
          comparisons: [compare(rss, figure(`the ${LIMIT_MIB} MiB limit`, "MiB", [LIMIT_MIB]), { max: 1 })],
        },
      ],
      details: { files, passS, rssMiB, findS },
    };
  },
};
