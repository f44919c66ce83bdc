// reconcile-command: `fanrecall reconcile [--dry-run] [--json] [--retain DURATION] DIR`. Walks
// the whole watched directory DIR is in (stat and stub state only: no recall, no data read),
// writes a snapshot of its namespace to the store (every archived file's path, attributes and
// object: renames, deletions and replacements since the last one are captured), then deletes
// the namespace's objects no file has referred to for longer than --retain, with their
// manifests and records, and snapshots older than twice --retain (never the newest).
//
// Safety: what is referenced comes from this walk, never from a snapshot; an object written
// after the walk began is never a candidate; a walk that met any problem writes no snapshot
// and deletes nothing; only DIR's namespace is listed or touched.
//
// Owns: its settings, the walk's output and the exit code. Must not own: the retention rules
// (namespace-history.ts).
import { StubStore } from "../listener/stub-store.js";
import { snapshotDir } from "../proto/namespace-format.js";
import type { FileRecord } from "../proto/namespace-format.js";
import { helpText } from "../settings/help-text.js";
import { formatDuration, loadSettings } from "../settings/settings.js";
import type { CommandSpec, FlagSetting } from "../settings/setting-types.js";
import { recordOf } from "../listener/file-records.js";
import type { ListedName } from "./namespace-client.js";
import {
  expiredSnapshots,
  latestSnapshot,
  objectId,
  planRetention,
  snapshotTimes,
  writeSnapshot,
} from "./namespace-history.js";
import { openNamespaceSession } from "./namespace-session.js";
import type { NamespaceSession } from "./namespace-session.js";
import { NAMESPACE_ADMIN_SETTINGS, RETAIN_SETTING } from "./namespace-settings.js";
import { walkFiles } from "./safe-walk.js";
import type { WalkProblem } from "./safe-walk.js";

const stubs = new StubStore(null);
/**
 * Objects written this long before the walk began, or later, are never orphans yet: an archive
 * uploads its object, manifest and record and the listener writes the file's stub state right
 * after, so an object can be in the store a little before any file names it.
 */
export const YOUNG_MS = 60_000;

const DRY_RUN = {
  name: "dry-run",
  key: "dryRun",
  type: "flag",
  help: "change nothing; print what would be deleted",
} as const satisfies FlagSetting;

export const RECONCILE_SPEC = {
  usage: "fanrecall reconcile [--dry-run] [--json] [--retain DURATION] [--run-dir DIR] DIR",
  about: `Writes a snapshot of the namespace of the watched directory DIR is in (the whole watched
directory is walked, by stat and stub state only) to the store, then deletes the namespace's
objects that no file has referred to for longer than --retain. 'fanrecall start' runs it every
--reconcile-every (default 1h).`,
  settings: [RETAIN_SETTING, DRY_RUN, ...NAMESPACE_ADMIN_SETTINGS],
  positionals: { name: "DIR", min: 1 },
} as const satisfies CommandSpec;

export const RECONCILE_HELP = helpText(RECONCILE_SPEC);

interface Walked {
  readonly files: FileRecord[];
  readonly referenced: Set<string>;
  readonly problems: WalkProblem[];
}

/** Every stub beneath the watched directory: records of the archived ones, ids of all. */
function walk(session: NamespaceSession, nowMs: number): Walked {
  const { at, roots } = session;
  const files: FileRecord[] = [];
  const referenced = new Set<string>();
  const problems: WalkProblem[] = [];
  const prefix = at.rootPath === "/" ? "/" : `${at.rootPath}/`;
  for (const f of walkFiles(roots, [at.rootPath], problems)) {
    const s = stubs.readOPath(f.fd);
    if (s === null) continue;
    if (s === "corrupt") {
      problems.push({ path: f.path, reason: "stub-corrupt", error: "the stub state is corrupt" });
      continue;
    }
    referenced.add(objectId(s.key));
    const changed = s.state === "archived" && (f.st.size !== s.size || f.st.mtimeNs !== s.mtimeNs);
    if (s.state === "dirty" || changed) continue; // its archived copy is not its content any more
    files.push(recordOf(f.path.slice(prefix.length), f.st, s, nowMs));
  }
  return { files, referenced, problems };
}

async function listAll(session: NamespaceSession, area: "objects" | "records"): Promise<ListedName[]> {
  const all: ListedName[] = [];
  for await (const o of session.store.list(area)) all.push(o);
  return all;
}

export async function reconcileCommand(argv: readonly string[]): Promise<number> {
  const args = loadSettings(RECONCILE_SPEC, argv);
  if (args.positionals.length !== 1) throw new Error("give exactly one DIR");
  const session = await openNamespaceSession("reconcile", args.positionals[0], args);
  const out = (o: Record<string, unknown>, text: string) =>
    process.stdout.write(args.json ? `${JSON.stringify(o)}\n` : `${text}\n`);
  try {
    const { store } = session;
    const nowMs = Date.now();
    const walked = walk(session, nowMs);
    for (const p of walked.problems) process.stderr.write(`fanrecall reconcile: ${p.path}: ${p.error} (${p.reason})\n`);
    if (walked.problems.length > 0) {
      process.stderr.write("fanrecall reconcile: the walk was incomplete; no snapshot written, nothing deleted\n");
      return 1;
    }
    const problems: string[] = [];
    const previous = await latestSnapshot(store, problems);
    const plan = planRetention({
      referenced: walked.referenced,
      objects: await listAll(session, "objects"),
      records: await listAll(session, "records"),
      previous: previous?.orphans ?? [],
      nowMs,
      retainMs: args.retain,
      youngerThanMs: nowMs - YOUNG_MS,
    });
    const times = await snapshotTimes(store);
    const expired = expiredSnapshots([nowMs, ...times], nowMs, args.retain);
    for (const name of plan.deletions) out({ action: "delete", name }, `delete   ${name}`);
    if (!args.dryRun) {
      await writeSnapshot(store, nowMs, walked.files, plan.orphans);
      await store.delete(plan.deletions, `unreferenced for longer than ${formatDuration(args.retain)}`);
      await deleteSnapshots(session, expired);
    }
    for (const p of problems) process.stderr.write(`fanrecall reconcile: ${p}\n`);
    out(
      {
        summary: true,
        namespace: store.namespace,
        dryRun: args.dryRun,
        files: walked.files.length,
        orphans: plan.orphans.length,
        deletedObjects: plan.deletedIds.length,
        deleted: plan.deletions.length,
        expiredSnapshots: expired.length,
      },
      `reconcile: ${walked.files.length} files in the snapshot of '${store.namespace}', ${plan.orphans.length} unreferenced objects kept, ${plan.deletedIds.length} deleted${args.dryRun ? " (dry run)" : ""}`,
    );
    return 0;
  } finally {
    session.close();
  }
}

async function deleteSnapshots(session: NamespaceSession, times: readonly number[]): Promise<void> {
  for (const t of times) {
    const names: string[] = [];
    for await (const o of session.store.list("snapshots", `${snapshotDir(t)}/`)) {
      if (!o.name.startsWith(`${snapshotDir(t)}/`)) break;
      names.push(o.name);
    }
    // The marker first, alone: a snapshot without it no longer counts, whatever of it is left.
    const why = "snapshot older than twice the retention";
    await session.store.delete(
      names.filter((n) => n.endsWith("/complete.json")),
      why,
    );
    await session.store.delete(
      names.filter((n) => !n.endsWith("/complete.json")),
      why,
    );
  }
}

/** What `fanrecall reconcile` runs and its --help (cli/main.ts loads this module only then). */
export const RECONCILE_COMMAND = { run: reconcileCommand, help: () => RECONCILE_HELP };
