// instance-registry: which running `fanrecall start` watches which directory, so that the
// admin commands find an instance's sockets from the path they are given, whatever
// --state-dir or --run-dir it was started with. `fanrecall start` writes one small record
// per instance, INSTANCES_DIR/<id>.json ({pid, startTime, runDir, stateDir, watch: [{path,
// dev, ino}]}, id = a hash of the run dir, since two instances cannot share sockets), and
// removes it when it stops. INSTANCES_DIR is root's alone (0700): a record names the run
// dir whose admin socket root then sends file descriptors to.
//
// A path belongs to the instance that watches its nearest ancestor, matched by the watched
// directory's (dev, ino) as recorded at start, never by string prefix. A record whose pid is
// gone (or is another process now: its start time differs) is stale and ignored.
//
// Owns: the record files. Must not own: argument parsing, the sockets, or the resolution of
// paths for the commands themselves (watch-roots.ts does that by fd). Holds no fds.
import { createHash } from "node:crypto";
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync } from "node:fs";
import { renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { DEFAULT_RUN_DIR, INSTANCES_DIR, adminSocketPath } from "../ipc/run-dir.js";

export interface InstanceRecord {
  readonly pid: number;
  readonly startTime: string;
  readonly runDir: string;
  readonly stateDir: string;
  readonly watch: ReadonlyArray<{ readonly path: string; readonly dev: number; readonly ino: number }>;
}

/** Field 22 of /proc/PID/stat (start time in clock ticks since boot), or null when pid is gone. */
function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

function recordPath(dir: string, runDir: string): string {
  return join(dir, `${createHash("sha256").update(runDir).digest("hex").slice(0, 16)}.json`);
}

/** Records this process as the instance with these sockets; returns the function that removes it. */
export function registerInstance(
  instance: { runDir: string; stateDir: string; watch: readonly string[] },
  dir = INSTANCES_DIR,
): () => void {
  mkdirSync(dirname(dir), { recursive: true, mode: 0o755 });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== process.getuid?.()) throw new Error(`${dir} is not a directory of this user's`);
  chmodSync(dir, 0o700);
  const record: InstanceRecord = {
    pid: process.pid,
    startTime: processStartTime(process.pid) ?? "",
    runDir: instance.runDir,
    stateDir: instance.stateDir,
    watch: instance.watch.map((path) => {
      const w = statSync(path); // the directory the listener marks, as it resolves it
      return { path, dev: w.dev, ino: w.ino };
    }),
  };
  const file = recordPath(dir, instance.runDir);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(record) + "\n", { mode: 0o600 });
  renameSync(tmp, file);
  return () => {
    // Only our own record: a later instance on the same run dir may have replaced it.
    if (readRecord(file)?.pid === process.pid) rmSync(file, { force: true });
  };
}

function readRecord(file: string): InstanceRecord | null {
  try {
    const r = JSON.parse(readFileSync(file, "utf8")) as Partial<InstanceRecord>;
    if (typeof r.pid !== "number" || typeof r.runDir !== "string" || !Array.isArray(r.watch)) return null;
    return r as InstanceRecord;
  } catch {
    return null;
  }
}

/** The records of instances that are still running. */
export function liveInstances(dir = INSTANCES_DIR): InstanceRecord[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith(".json"));
  } catch {
    return [];
  }
  return names
    .map((n) => readRecord(join(dir, n)))
    .filter((r): r is InstanceRecord => r !== null && processStartTime(r.pid) === r.startTime);
}

/** The run dirs of the instances watching the nearest watched ancestor of `path` (lstat, no symlink followed). */
function instancesFor(path: string, instances: readonly InstanceRecord[]): string[] {
  for (let p = resolve(path); ; p = dirname(p)) {
    // A missing file gives null: its directory may still be watched (the command then says ENOENT).
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (st?.isDirectory()) {
      const found = instances.filter((i) => i.watch.some((w) => w.dev === st.dev && w.ino === st.ino));
      if (found.length > 0) return [...new Set(found.map((i) => i.runDir))];
    }
    if (p === "/") return [];
  }
}

/**
 * The run dir of the one instance that watches every path. None registered: the default run
 * dir when a listener serves it there, else null. Throws, in one line, when the paths
 * belong to several instances.
 */
export function findRunDir(paths: readonly string[], dir = INSTANCES_DIR): string | null {
  const instances = liveInstances(dir);
  const runDirs = new Set<string>();
  for (const path of paths) {
    const found = instancesFor(path, instances);
    if (found.length > 1)
      throw new Error(`${path} is watched by ${found.length} running instances (${found.join(", ")}): pass --run-dir`);
    if (found.length === 1) runDirs.add(found[0]);
  }
  if (runDirs.size > 1)
    throw new Error(`the paths belong to different instances (${[...runDirs].join(", ")}): one command per instance`);
  if (runDirs.size === 1) return [...runDirs][0];
  return existsSync(adminSocketPath(DEFAULT_RUN_DIR)) ? DEFAULT_RUN_DIR : null;
}

/** findRunDir, or an error in one line saying what to do. */
export function requireRunDir(paths: readonly string[], dir = INSTANCES_DIR): string {
  const runDir = findRunDir(paths, dir);
  if (runDir !== null) return runDir;
  throw new Error(
    `no running fanrecall watches ${paths[0]} (none in ${dir}, no listener in ${DEFAULT_RUN_DIR}): start one with 'fanrecall start --watch DIR', or pass --run-dir`,
  );
}
