// bench/main.ts: `npm run bench` (via bench/run.sh): runs the selected scenarios of issue #5
// one after another against one Swift all-in-one (and, for scenario 1, one s3rver), prints a
// table of medians (min-max) and ratios with their targets, and writes the same as JSON
// (bench/results/latest.json).
//
// Owns: the run: argument parsing, the C helpers' build, the BenchContext and its cleanup
// (in finally, on SIGINT/SIGTERM, and when the run-wide watchdog fires), the exit code.
// Exit: 0 when every selected scenario ran (targets missed are results, not failures),
// 1 when a scenario failed, 2 on bad usage, 3 when the watchdog stopped the run.
// Must not: change fanrecall, the machine's config or anything outside its temp dirs and
// bench/results/ (apt-get installs happen in run.sh, before this starts).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { cpus, release } from "node:os";
import { fileURLToPath } from "node:url";
import type { BenchOptions, Scenario } from "./context.js";
import { BenchContext } from "./context.js";
import { buildCTools, nowMs } from "./measure.js";
import type { ScenarioResult } from "./report.js";
import { formatTable, writeJson } from "./report.js";
import { scenario1 } from "./scenario-1-full-read.js";
import { scenario2 } from "./scenario-2-first-byte.js";
import { scenario3 } from "./scenario-3-random-access.js";
import { scenario4 } from "./scenario-4-second-read.js";
import { scenario5 } from "./scenario-5-non-stubs.js";
import { scenario6 } from "./scenario-6-concurrency.js";
import { scenario7 } from "./scenario-7-scale.js";
import { scenario8 } from "./scenario-8-check-cost.js";
import { scenario9 } from "./scenario-9-rebuild.js";
import { scenario10 } from "./scenario-10-policy.js";
import { scenario11 } from "./scenario-11-cpu.js";
import { scenario12 } from "./scenario-12-real-workload.js";

const SCENARIOS: readonly Scenario[] = [
  scenario1,
  scenario2,
  scenario3,
  scenario4,
  scenario5,
  scenario6,
  scenario7,
  scenario8,
  scenario9,
  scenario10,
  scenario11,
  scenario12,
];

const DEFAULT_OUT = fileURLToPath(new URL("./results/latest.json", import.meta.url));
const DIST_MAIN = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));

export const BENCH_HELP = `Usage: npm run bench -- [--quick] [--only N[,M...]] [--out FILE] [--verbose]

Benchmarks fanrecall (issue #5) as root on this machine: installs s3fs, rclone and fuse3
from Debian when missing, builds dist/, and runs the selected scenarios. Every scenario uses a
Swift all-in-one on 127.0.0.1 (S3 API), started once; scenario 1 also starts an s3rver on
127.0.0.1 (the project's embedded store) and repeats its fanrecall and minio-js rows there.

  1   full first read of a released 256 MiB file, caches dropped (vs minio-js GET on Swift and
      on s3rver; s3fs and rclone on Swift)
  2   time to the first 4 KiB of a released file (vs rclone, s3fs, whole-file recall)
  3   4 KiB at offset 200 MiB of an untouched released file (vs rclone, s3fs)
  4   second read after recall (vs a never-archived file)
  5   non-stub files on a watched filesystem (vs no listener; first touch vs a minimal C listener)
  6   100 readers of one stub (store bytes fetched), 64 stubs at once (vs single-stream GET)
  7   listener memory and start time with 100,000 stubs (vs none)
  8   full first read with the listener's check of recalled bytes (vs the same without it)
  9   rebuild of 100,000 released stubs from the namespace in the store (vs a 120 s limit;
      making the same tree directly for information)
  10  one dry-run policy pass over 1,000,000 files: wall time and peak RSS (vs 120 s, 256 MiB)
  11  CPU seconds per GiB of a cold full read, all fanrecall processes (vs a minio-js download)
  12  a real workload: tar cf - | cat of a released tree of 5,000+ small files (node_modules
      packages), cold (vs rclone mount's first read of the same tree uploaded to Swift; the
      resident tree for information)

Each scenario runs several reps (3-5; --quick: 1-2, and smaller counts in 5-7) and reports
median (min-max). Every ratio compares figures measured in the same run.

Options:
  --quick          fewer reps and smaller counts (scenario 12 still archives and uploads its
                   whole tree once: minutes, depending on how fast the store takes small objects)
  --only N[,M...]  run only these scenarios
  --out FILE       JSON output (default bench/results/latest.json)
  --verbose        print fanrecall's output when an instance exits badly
  --help           this text
`;

function parseArgs(argv: readonly string[]): BenchOptions | "help" {
  let quick = false;
  let only: Set<number> | null = null;
  let out = DEFAULT_OUT;
  let verbose = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--help" || a === "-h") return "help";
    else if (a === "--quick") quick = true;
    else if (a === "--verbose") verbose = true;
    else if (a === "--only" || a.startsWith("--only=")) {
      const v = a === "--only" ? argv[++i] : a.slice("--only=".length);
      const ids = (v ?? "").split(",").map((s) => Number(s.trim()));
      if (ids.length === 0 || ids.some((n) => !SCENARIOS.some((s) => s.id === n)))
        throw new Error(`--only takes scenario numbers 1-${SCENARIOS.length}, not '${v ?? ""}'`);
      only = new Set(ids);
    } else if (a === "--out") {
      const v = argv[++i];
      if (!v) throw new Error("--out needs a file");
      out = v;
    } else throw new Error(`unknown argument '${a}' (see --help)`);
  }
  return { quick, only, out, verbose };
}

function versionOf(cmd: string, args: readonly string[]): string {
  try {
    const env = { ...process.env };
    delete env.AWS_CA_BUNDLE;
    return execFileSync(cmd, args, { encoding: "utf8", timeout: 10_000, env, stdio: ["ignore", "pipe", "pipe"] })
      .split("\n")[0]
      .trim();
  } catch {
    return "unknown";
  }
}

async function runScenarios(ctx: BenchContext, selected: readonly Scenario[]): Promise<ScenarioResult[]> {
  const results: ScenarioResult[] = [];
  for (const s of selected) {
    ctx.log(`scenario ${s.id}: ${s.title}`);
    const t = nowMs();
    try {
      const outcome = await s.run(ctx);
      results.push({ id: s.id, title: s.title, durationS: (nowMs() - t) / 1000, ...outcome });
    } catch (err: unknown) {
      const msg = err instanceof Error ? err.message : String(err);
      ctx.log(`scenario ${s.id} failed: ${msg}`);
      results.push({ id: s.id, title: s.title, reps: 0, durationS: (nowMs() - t) / 1000, rows: [], error: msg });
    }
  }
  return results;
}

export async function benchMain(argv: readonly string[]): Promise<number> {
  let opts: BenchOptions | "help";
  try {
    opts = parseArgs(argv);
  } catch (err: unknown) {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  if (opts === "help") {
    process.stdout.write(BENCH_HELP);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write("bench: must run as root (fanotify, loop mounts, drop_caches, FUSE)\n");
    return 2;
  }
  if (!existsSync(DIST_MAIN)) {
    process.stderr.write("bench: dist/ is missing; run `npx tsc -p tsconfig.build.json` (bench/run.sh does)\n");
    return 2;
  }
  const selected = SCENARIOS.filter((s) => opts.only === null || opts.only.has(s.id));
  const ctx = new BenchContext(opts, await buildCTools());
  ctx.defer("C helpers", () => ctx.tools.cleanup());
  const watchdogMs = (opts.quick ? 40 : 90) * 60_000;
  let stopping = false;
  const abort = (why: string, code: number) => {
    if (stopping) return;
    stopping = true;
    ctx.log(`${why}: cleaning up`);
    void ctx.cleanup().finally(() => process.exit(code));
  };
  const watchdog = setTimeout(() => abort(`watchdog: the run exceeded ${watchdogMs / 60_000} min`, 3), watchdogMs);
  process.on("uncaughtException", (err) => abort(`uncaught exception: ${err.stack ?? err.message}`, 1));
  process.on("unhandledRejection", (err) => abort(`unhandled rejection: ${String(err)}`, 1));
  process.once("SIGINT", () => abort("SIGINT", 130));
  process.once("SIGTERM", () => abort("SIGTERM", 143));
  const started = new Date();
  let results: ScenarioResult[];
  try {
    results = await runScenarios(ctx, selected);
  } finally {
    clearTimeout(watchdog);
    if (!stopping) await ctx.cleanup();
  }
  const table = formatTable(results);
  process.stdout.write(`\n${table}\n`);
  writeJson(opts.out, {
    issue: 5,
    startedAt: started.toISOString(),
    durationS: (Date.now() - started.getTime()) / 1000,
    options: { quick: opts.quick, only: opts.only ? [...opts.only] : null },
    host: {
      kernel: release(),
      cpus: cpus().length,
      node: process.version,
      s3fs: versionOf("s3fs", ["--version"]),
      rclone: versionOf("rclone", ["version"]),
    },
    table: table.split("\n"),
    scenarios: results,
  });
  process.stdout.write(`\nwritten: ${opts.out}\n`);
  return results.some((r) => r.error) ? 1 : 0;
}

const code = await benchMain(process.argv.slice(2));
process.exit(code);
