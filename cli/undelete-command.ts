// undelete-command: `fanrecall undelete [--as-of TIME] [--to PATH] PATH...`. Brings back, as
// a released stub, a file that was deleted or replaced while its archived copy is still in
// the store (within reconcile's retention): the version from the newest record or snapshot
// that had it (at or before --as-of), whose object still exists and is not the one the path
// holds now. An existing file is never overwritten: a replaced file comes back beside it
// with --to. A file with no archived copy left fails with reason "gone".
//
// Owns: its settings, output and exit code. Must not own: the history format or how a stub
// is made.
import { resolve } from "node:path";
import * as native from "../native/index.js";
import { StubStore } from "../listener/stub-store.js";
import type { ReasonName } from "../proto/index.js";
import type { FileRecord } from "../proto/namespace-format.js";
import { helpText } from "../settings/help-text.js";
import { loadSettings } from "../settings/settings.js";
import type { CommandSpec, PathSetting, StringSetting } from "../settings/setting-types.js";
import { readSnapshot, recordsSince, snapshotTimes } from "./namespace-history.js";
import { openNamespaceSession } from "./namespace-session.js";
import type { NamespaceSession } from "./namespace-session.js";
import { NAMESPACE_ADMIN_SETTINGS } from "./namespace-settings.js";
import { StubPlacer } from "./stub-placement.js";

const AS_OF = {
  name: "as-of",
  key: "asOf",
  type: "string",
  pattern: /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})?)?$/,
  shape: "an ISO 8601 date or time, such as 2026-11-30 or 2026-11-30T14:00:00Z",
  arg: "TIME",
  help: "bring back the version the store knew at this time (default: the newest it has)",
} as const satisfies StringSetting;

const TO = {
  name: "to",
  key: "to",
  type: "path",
  help: "put the file here instead (with one PATH; for a file that was replaced)",
} as const satisfies PathSetting;

export const UNDELETE_SPEC = {
  usage: "fanrecall undelete [--as-of TIME] [--to PATH] [--json] [--run-dir DIR] PATH...",
  about: `Brings back a deleted or replaced file as a released stub (reads then recall it), from the newest
record or snapshot that had it whose archived copy is still in the store. Existing files are never
overwritten. Fails with reason 'gone' when no archived copy is left (deleted by reconcile after
its retention, or never archived).`,
  settings: [AS_OF, TO, ...NAMESPACE_ADMIN_SETTINGS],
  positionals: { name: "PATH", min: 1 },
} as const satisfies CommandSpec;

export const UNDELETE_HELP = helpText(UNDELETE_SPEC);

class UndeleteError extends Error {
  constructor(
    readonly reason: ReasonName,
    message: string,
  ) {
    super(message);
  }
}

/** The object key the file at `rel` refers to now, "" when it has none, null when there is no file. */
function currentKey(session: NamespaceSession, abs: string): string | null {
  let fd: number;
  try {
    fd = session.roots.open(abs);
  } catch {
    return null;
  }
  try {
    const s = new StubStore(null).readOPath(fd);
    return s === null || s === "corrupt" ? "" : s.key;
  } finally {
    native.close(fd);
  }
}

/** The newest version of `rel` at or before `asOfMs` whose object is there and is not `exclude`. */
async function findVersion(
  session: NamespaceSession,
  rel: string,
  asOfMs: number,
  exclude: string,
): Promise<FileRecord> {
  const { store } = session;
  const problems: string[] = [];
  const times = (await snapshotTimes(store)).filter((t) => t <= asOfMs);
  const fits = (r: FileRecord) => r.path === rel && r.key !== exclude && r.recordedAtMs <= asOfMs;
  const candidates = (await recordsSince(store, times[0] ?? 0, problems)).filter(fits).reverse();
  for (const r of candidates) if (await store.exists(r)) return r;
  for (const t of times) {
    let files: readonly FileRecord[];
    try {
      files = (await readSnapshot(store, t)).files;
    } catch {
      continue;
    }
    const r = files.find(fits);
    if (r && (await store.exists(r))) return r;
  }
  throw new UndeleteError(
    "gone",
    "no archived copy of it is left in the store (deleted after its retention, or never archived)",
  );
}

async function undeleteOne(
  path: string,
  args: { asOf?: string; to?: string; runDir?: string },
): Promise<{ dest: string; record: FileRecord }> {
  const abs = resolve(path);
  const dest = args.to ?? abs;
  const session = await openNamespaceSession("undelete", abs, args);
  try {
    const from = session.at;
    const to = session.roots.locate(dest);
    if (from.rel === "" || to === null || to.rel === "")
      throw new UndeleteError("invalid-path", "not a file beneath a watched directory");
    const now = currentKey(session, abs);
    if (currentKey(session, dest) !== null) {
      throw new UndeleteError(
        "exists",
        args.to
          ? "--to names an existing file"
          : "a file is there now; bring the old one back beside it with --to NEWPATH",
      );
    }
    const asOfMs = args.asOf === undefined ? Number.MAX_SAFE_INTEGER : Date.parse(args.asOf);
    if (Number.isNaN(asOfMs)) throw new UndeleteError("invalid-path", `--as-of: cannot read '${args.asOf}'`);
    const record = await findVersion(session, from.rel, asOfMs, now ?? "");
    const placer = new StubPlacer(to.rootFd, session.admin, false);
    try {
      const p = await placer.place(to.rel, record);
      if (p.action !== "created") throw new UndeleteError(p.reason ?? "internal-error", p.error ?? p.action);
    } finally {
      placer.close();
    }
    return { dest, record };
  } finally {
    session.close();
  }
}

export async function undeleteCommand(argv: readonly string[]): Promise<number> {
  const args = loadSettings(UNDELETE_SPEC, argv);
  if (args.to !== undefined && args.positionals.length !== 1) throw new Error("--to goes with exactly one PATH");
  let failed = 0;
  for (const path of args.positionals) {
    try {
      const { dest, record } = await undeleteOne(path, args);
      const at = new Date(record.recordedAtMs).toISOString();
      if (args.json)
        process.stdout.write(`${JSON.stringify({ path, to: dest, action: "created", reason: null, version: at })}\n`);
      else process.stdout.write(`undelete: ${dest}: back as a released stub (the version recorded ${at})\n`);
    } catch (err: unknown) {
      failed++;
      const reason = err instanceof UndeleteError ? err.reason : "internal-error";
      const message = err instanceof Error ? err.message : String(err);
      if (args.json) process.stdout.write(`${JSON.stringify({ path, action: "failed", reason, error: message })}\n`);
      else process.stderr.write(`fanrecall undelete: ${path}: ${message} (${reason})\n`);
    }
  }
  return failed > 0 ? 1 : 0;
}

/** What `fanrecall undelete` runs and its --help (cli/main.ts loads this module only then). */
export const UNDELETE_COMMAND = { run: undeleteCommand, help: () => UNDELETE_HELP };
