// policy-command: `fanrecall policy`, the space manager, a root process of its own (never
// inside the listener). With --once it makes one pass over each DIR (policy-pass.ts) and
// exits 0 when every watermark holds afterwards; else it runs until SIGTERM, a pass every
// --interval and at once when a DIR's filesystem passes --release-above (statfs every few
// seconds). Every action is printed (a JSON object a line with --json) and, unless a dry
// run, is an audit record on stderr (a JSON line: audit "policy", action, path, size,
// lastUsed, reason, and the error if any). `fanrecall start --policy-file FILE` runs it as
// a supervised child with `--config FILE`. After each pass (not in a dry run) what it did is
// reported to the recall service's metrics (policy-stats.ts), best effort.
//
// Owns: its settings table, the admin connection and the watched directories' fds during a
// pass (closed after it), output and exit code. Must not own: the rules (policy-select.ts)
// or the walk (policy-pass.ts).
import { statfsSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { adminSocketPath } from "../ipc/run-dir.js";
import { helpText } from "../settings/help-text.js";
import { loadSettings } from "../settings/settings.js";
import { RUN_DIR_SETTING } from "../settings/shared-settings.js";
import type { CommandSpec, Settings } from "../settings/setting-types.js";
import { AdminClient } from "./admin-client.js";
import { requireRunDir } from "./instance-registry.js";
import { PolicyPass } from "./policy-pass.js";
import type { PassSummary, PolicyAction } from "./policy-pass.js";
import { excluder, usedPct } from "./policy-select.js";
import { PolicyStats } from "./policy-stats.js";
import { WatchRoots } from "./watch-roots.js";

const MIB = 1024 * 1024;
const POLL_MS = 5_000;

export const POLICY_SPEC = {
  usage: "fanrecall policy [--once] [--dry-run] [--json] [options] DIR...",
  about: `Keeps each DIR's filesystem below its high watermark. Files of at least --min-size not
modified for --archive-after are archived ahead (not released), at --archive-rate; when use
passes --release-above percent, archived files are released, least recently used first, until
use is at or below --release-to. "Used" is the last access, modification or recall, whichever
is latest. Pinned files (fanrecall pin), files below --min-size and paths matching --exclude
are never touched. Nothing is read or recalled: stat and the stub state only.`,
  configFile: true,
  settings: [
    { name: "once", key: "once", type: "flag", help: "one pass, then exit 0 when every watermark holds, else 1" },
    { name: "dry-run", key: "dryRun", type: "flag", help: "change nothing; print what would be done" },
    { name: "json", key: "json", type: "flag", help: "one JSON object a line, and a summary line per DIR" },
    {
      name: "release-above",
      key: "releaseAbove",
      type: "int",
      min: 1,
      max: 100,
      default: 85,
      help: "high watermark, % used",
    },
    { name: "release-to", key: "releaseTo", type: "int", min: 0, max: 99, default: 75, help: "low watermark, % used" },
    {
      name: "archive-after",
      key: "archiveAfter",
      type: "duration",
      min: 0,
      max: 3650 * 86_400_000,
      default: 3_600_000,
      help: "archive files not modified for this long",
    },
    {
      name: "min-size",
      key: "minSize",
      type: "size",
      min: 0,
      max: 2 ** 50,
      default: MIB,
      help: "smaller files are never touched",
    },
    {
      name: "archive-rate",
      key: "archiveRate",
      type: "int",
      min: 1,
      max: 100_000,
      default: 64,
      arg: "MIB_S",
      help: "MiB/s the archives may read",
    },
    {
      name: "exclude",
      key: "exclude",
      type: "list",
      separator: ":",
      arg: "GLOB",
      help: "never touch paths matching GLOB: relative to DIR, or absolute when it starts with /; * and ? within a name, ** across directories",
    },
    {
      name: "interval",
      key: "interval",
      type: "duration",
      min: 1000,
      max: 86_400_000,
      default: 60_000,
      help: "time between passes without --once",
    },
    {
      ...RUN_DIR_SETTING,
      defaultText: "the running instance that watches DIR",
      help: "the run dir of the fanrecall instance to use",
    },
    {
      name: "ready-file",
      key: "readyFile",
      type: "path",
      arg: "PATH",
      help: "created once running (for 'fanrecall start')",
    },
  ],
  positionals: { name: "DIR", min: 1 },
} as const satisfies CommandSpec;

export const POLICY_HELP = helpText(POLICY_SPEC);

type PolicySettings = Settings<typeof POLICY_SPEC.settings>;

export async function policyCommand(argv: readonly string[]): Promise<number> {
  const args = loadSettings(POLICY_SPEC, argv);
  if (process.getuid?.() !== 0) throw new Error("'fanrecall policy' must run as root");
  if (args.releaseTo >= args.releaseAbove) throw new Error("--release-to must be below --release-above");
  const dirs = args.positionals.map((d) => resolve(d));
  const warn = (line: string) => process.stderr.write(`fanrecall policy: ${line}\n`);
  const stats = args.dryRun ? null : new PolicyStats(() => args.runDir ?? requireRunDir(dirs), warn);
  try {
    return await passes(args, dirs, stats);
  } finally {
    stats?.close();
  }
}

/** One pass (--once: 0 when every watermark holds, else 1), or passes until SIGTERM (0). */
async function passes(args: PolicySettings, dirs: readonly string[], stats: PolicyStats | null): Promise<number> {
  if (args.once) return (await onePass(args, dirs, stats, () => false)) ? 0 : 1;
  let stopping = false;
  let wake: () => void = () => undefined;
  const stop = () => {
    stopping = true;
    wake();
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  if (args.readyFile !== undefined) writeFileSync(args.readyFile, `${process.pid}\n`);
  while (!stopping) {
    await onePass(args, dirs, stats, () => stopping);
    const until = Date.now() + args.interval;
    while (!stopping && Date.now() < until && !dirs.some((d) => overHigh(d, args.releaseAbove))) {
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, Math.min(POLL_MS, until - Date.now()));
      });
    }
  }
  return 0;
}

/** Whether DIR's filesystem is past the high watermark (a cheap look between passes). */
function overHigh(dir: string, releaseAbove: number): boolean {
  try {
    return usedPct(statfsSync(dir)) > releaseAbove;
  } catch {
    return false;
  }
}

/** One pass over every DIR; true when every watermark holds afterwards. */
async function onePass(
  args: PolicySettings,
  dirs: readonly string[],
  stats: PolicyStats | null,
  stopping: () => boolean,
): Promise<boolean> {
  const startedMs = Date.now();
  const client = new AdminClient(adminSocketPath(args.runDir ?? requireRunDir(dirs)));
  let ok = true;
  try {
    const roots = WatchRoots.open(await client.roots(10_000));
    try {
      for (const dir of dirs) {
        const summary = await new PolicyPass({
          client,
          roots,
          dir,
          rules: {
            releaseAbove: args.releaseAbove,
            releaseTo: args.releaseTo,
            archiveAfterMs: args.archiveAfter,
            minSize: args.minSize,
            archiveRate: args.archiveRate * MIB,
            excluded: excluder(args.exclude),
          },
          dryRun: args.dryRun,
          report: (a) => {
            stats?.action(a);
            report(a, args);
          },
          problem: (p) => process.stderr.write(`fanrecall policy: ${p.path}: ${p.error} (${p.reason})\n`),
          stopping,
        }).run();
        printSummary(summary, args.json);
        stats?.dirDone(summary);
        ok &&= summary.failure === null;
      }
    } finally {
      roots.close();
    }
    await stats?.passDone((Date.now() - startedMs) / 1000);
  } catch (err: unknown) {
    process.stderr.write(`fanrecall policy: ${err instanceof Error ? err.message : String(err)}\n`);
    ok = false;
  } finally {
    client.close();
  }
  return ok;
}

function report(a: PolicyAction, args: { json: boolean; dryRun: boolean }): void {
  const lastUsed = new Date(a.lastUsedMs).toISOString();
  if (!args.dryRun) {
    const audit = { audit: "policy", action: a.action, path: a.path, size: a.size, lastUsed, reason: a.trigger };
    process.stderr.write(`${JSON.stringify(a.error === null ? audit : { ...audit, error: a.error })}\n`);
  }
  if (a.error !== null) return;
  if (args.json)
    process.stdout.write(`${JSON.stringify({ path: a.path, action: a.action, size: a.size, lastUsed })}\n`);
  else process.stdout.write(`${a.action.padEnd(8)} ${String(a.size).padStart(14)}  ${lastUsed}  ${a.path}\n`);
}

function printSummary(s: PassSummary, json: boolean): void {
  const { dir, usedPctBefore, usedPctAfter, archived, released, failure } = s;
  if (json) {
    const line = { summary: true, dir, usedPctBefore, usedPctAfter, archived, released };
    process.stdout.write(`${JSON.stringify(failure === null ? line : { ...line, failure })}\n`);
  } else {
    process.stdout.write(
      `${dir}: ${usedPctBefore}% -> ${usedPctAfter}% used; ${archived} archived, ${released} released\n`,
    );
  }
  if (failure !== null) process.stderr.write(`fanrecall policy: ${dir}: ${failure}\n`);
}

/** What `fanrecall policy` runs and its --help (cli/main.ts loads this module only then). */
export const POLICY_COMMAND = { run: policyCommand, help: () => POLICY_HELP };
