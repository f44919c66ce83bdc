// rebuild-command: `fanrecall rebuild [--namespace NAME] [--dry-run] [--json] DIR`. Recreates,
// beneath DIR (a watched directory, or a directory beneath one), every file of the
// namespace's latest snapshot and of the records written after it, as a released stub with
// its size, owner, group, mode and times: no data is downloaded; reads recall as usual. An
// existing file is never overwritten (skipped); every file that could not be placed is
// reported with its reason, and the exit code is 1 when there was one.
//
// Owns: its settings, output and exit code. Must not own: the history rules
// (namespace-history.ts) or how a stub is made (stub-placement.ts).
import { join } from "node:path";
import { helpText } from "../settings/help-text.js";
import { loadSettings } from "../settings/settings.js";
import type { CommandSpec, FlagSetting, StringSetting } from "../settings/setting-types.js";
import { latestSnapshot, mergeHistory, recordsSince } from "./namespace-history.js";
import { openNamespaceSession } from "./namespace-session.js";
import { NAMESPACE_ADMIN_SETTINGS } from "./namespace-settings.js";
import { StubPlacer } from "./stub-placement.js";
import type { Placement } from "./stub-placement.js";

const NAMESPACE = {
  name: "namespace",
  key: "namespace",
  type: "string",
  pattern: /^[a-z0-9][a-z0-9._-]{0,99}$/,
  shape: "a namespace name (lower-case letters, digits, '.', '_', '-')",
  arg: "NAME",
  help: "rebuild from this namespace (default: the namespace of the watched directory DIR is in)",
} as const satisfies StringSetting;

const DRY_RUN = {
  name: "dry-run",
  key: "dryRun",
  type: "flag",
  help: "change nothing; print what would be created or skipped",
} as const satisfies FlagSetting;

export const REBUILD_SPEC = {
  usage: "fanrecall rebuild [--namespace NAME] [--dry-run] [--json] [--run-dir DIR] DIR",
  about: `Recreates every file the store holds for the namespace (its latest snapshot plus files archived
or released after it) beneath DIR as a released stub: size, owner, group, mode (without setuid and
setgid) and times as recorded; no data is downloaded. Existing files are never overwritten;
missing directories are created (root, 0755). Exits 1 when any file could not be placed.`,
  settings: [NAMESPACE, DRY_RUN, ...NAMESPACE_ADMIN_SETTINGS],
  positionals: { name: "DIR", min: 1 },
} as const satisfies CommandSpec;

export const REBUILD_HELP = helpText(REBUILD_SPEC);

export async function rebuildCommand(argv: readonly string[]): Promise<number> {
  const args = loadSettings(REBUILD_SPEC, argv);
  if (args.positionals.length !== 1) throw new Error("give exactly one DIR");
  const session = await openNamespaceSession("rebuild", args.positionals[0], args);
  const counts = { created: 0, skipped: 0, failed: 0 };
  const problems: string[] = [];
  try {
    const { at, store } = session;
    const snapshot = await latestSnapshot(store, problems);
    const records = await recordsSince(store, snapshot?.takenAtMs ?? 0, problems);
    if (snapshot === null && records.length === 0) {
      throw new Error(`the store holds no snapshot and no record for namespace '${store.namespace}'`);
    }
    const files = [...mergeHistory(snapshot, records).values()]
      .filter((r) => at.rel === "" || r.path === at.rel || r.path.startsWith(`${at.rel}/`))
      .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const placer = new StubPlacer(at.rootFd, session.admin, args.dryRun);
    try {
      for (const r of files) {
        const p = await placer.place(r.path, r);
        counts[p.action]++;
        report(join(at.rootPath, r.path), p, args.json);
      }
    } finally {
      placer.close();
    }
  } finally {
    session.close();
  }
  for (const p of problems) process.stderr.write(`fanrecall rebuild: left out: ${p}\n`);
  const summary = { summary: true, namespace: session.store.namespace, dryRun: args.dryRun, ...counts };
  process.stdout.write(
    args.json
      ? `${JSON.stringify(summary)}\n`
      : `rebuild: ${counts.created} created, ${counts.skipped} skipped, ${counts.failed} failed\n`,
  );
  return counts.failed > 0 ? 1 : 0;
}

function report(path: string, p: Placement, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify({ path, action: p.action, reason: p.reason ?? null, error: p.error })}\n`);
  } else if (p.action === "failed") {
    process.stderr.write(`fanrecall rebuild: ${path}: ${p.error ?? "failed"} (${p.reason ?? "error"})\n`);
  } else {
    process.stdout.write(`${p.action.padEnd(8)} ${path}${p.action === "skipped" ? " (exists)" : ""}\n`);
  }
}

/** What `fanrecall rebuild` runs and its --help (cli/main.ts loads this module only then). */
export const REBUILD_COMMAND = { run: rebuildCommand, help: () => REBUILD_HELP };
