// bench/stubs.ts: fanrecall-side fixtures and probes for the bench: archive + release through
// the real CLI, saving a released stub's state and re-creating that stub between reps, fake
// stubs made without the store (scale scenario), and the listener's pid, RSS and start time.
//
// Owns: the fds it opens for one call (closed before it returns). Uses fanrecall's own native
// facade and stub-state codec (imported, never copied) so the stubs are exactly what the
// listener expects.
// Must not: re-stub a file while a fanrecall instance watches it (the punch would raise an
// event and a whole-file recall): restub() is only called between instances.
// Why re-stub by hand: a partly recalled file cannot be released again without a whole
// restore and verify (seconds of store traffic that would pollute the next rep); putting the
// saved `released` xattr back and punching the data reproduces what release leaves behind.
import { closeSync, ftruncateSync, openSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import * as native from "../native/index.js";
import { STUB_XATTR, decodeStubState, encodeStubState } from "../listener/stub-state.js";
import type { StubState } from "../listener/stub-state.js";
import type { FanrecallInstance } from "../test/helpers/fanrecall-instance.js";
import { MiB } from "./measure.js";

export interface SavedStub {
  readonly path: string;
  readonly raw: Buffer;
  readonly state: StubState;
}

/**
 * `fanrecall OP` of paths (files or dirs), split into `workers` groups run as concurrent
 * commands (each command handles its files one at a time; the store's writes overlap across
 * commands); throws when one fails.
 */
export async function adminOp(
  fr: FanrecallInstance,
  op: "archive" | "release",
  paths: readonly string[],
  timeoutMs: number,
  workers = 1,
): Promise<void> {
  const groups = Array.from({ length: Math.min(workers, paths.length) }, (_, g) =>
    paths.filter((_p, i) => i % workers === g),
  );
  await Promise.all(
    groups.map(async (group) => {
      const r = await fr.cli([op, ...group], timeoutMs);
      if (r.code !== 0) throw new Error(`fanrecall ${op} failed (${r.code}): ${r.stderr}\n${fr.output().slice(-3000)}`);
    }),
  );
}

/** `fanrecall archive` then `fanrecall release` of paths (files or dirs); throws on failure. */
export async function archiveAndRelease(fr: FanrecallInstance, paths: readonly string[], timeoutMs: number) {
  for (const op of ["archive", "release"] as const) await adminOp(fr, op, paths, timeoutMs);
  const status = await fr.status(paths);
  const notReleased = status.filter((s) => s.state !== "released");
  if (notReleased.length > 0) throw new Error(`not released: ${JSON.stringify(notReleased.slice(0, 3))}`);
  return status;
}

/** Reads the `released` stub state of a file (after archiveAndRelease). */
export function saveStub(path: string): SavedStub {
  const raw = native.getxattr(path, STUB_XATTR);
  if (raw === null) throw new Error(`${path} has no stub state`);
  const state = decodeStubState(raw);
  if (state.state !== "released") throw new Error(`${path} is ${state.state}, not released`);
  return { path, raw, state };
}

/** Makes the file the released stub it was: punch all data, put the saved state and times back. */
export function restub(saved: SavedStub): void {
  const fd = openSync(saved.path, "r+");
  try {
    const size = native.fstat(fd).size;
    if (size !== saved.state.size) throw new Error(`${saved.path}: size ${size}, stub says ${saved.state.size}`);
    if (size > 0) native.punchHole(fd, 0, Math.ceil(size / MiB) * MiB);
    native.fsetxattr(fd, STUB_XATTR, saved.raw, 0);
    native.futimens(fd, saved.state.atimeNs, saved.state.mtimeNs);
    const left = native.seekData(fd, 0);
    if (left !== -1 && left < size) throw new Error(`${saved.path}: data left at ${left} after punching`);
  } finally {
    closeSync(fd);
  }
}

const FAKE_SHA = "0".repeat(64);

/** Creates n sparse files `${dir}/s000000..` of `size` bytes, each with a valid `released` stub xattr. */
export function writeFakeStubs(dir: string, n: number, size: number): void {
  for (let i = 0; i < n; i++) {
    const fd = openSync(join(dir, `s${String(i).padStart(6, "0")}`), "w", 0o644);
    try {
      ftruncateSync(fd, size);
      const st = native.fstat(fd);
      const state: StubState = {
        version: 1,
        state: "released",
        bucket: "bench-fake",
        key: `fanrecall/fake-${i}`,
        versionId: "",
        manifestVersionId: "",
        size,
        mtimeNs: st.mtimeNs,
        atimeNs: st.atimeNs,
        chunkSize: 4 * MiB,
        contentSha256: FAKE_SHA,
        manifestSha256: FAKE_SHA,
      };
      native.fsetxattr(fd, STUB_XATTR, encodeStubState(state), 0);
    } finally {
      closeSync(fd);
    }
  }
}

/** The pid of the `fanrecall listener` child of this instance's supervisor. */
export function listenerPid(fr: FanrecallInstance): number {
  const parent = fr.child.pid;
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid !== parent) continue;
      const argv = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
      if (argv.some((a) => a.endsWith("fanrecall.js")) && argv.includes("listener")) return Number(name);
    } catch {
      // the process went away while we looked
    }
  }
  throw new Error(`no listener child of supervisor ${parent}`);
}

/** VmRSS of a process in KiB. */
export function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

const CLK_TCK = 100;

/** Epoch ms at which a process started (10 ms resolution: /proc/PID/stat starttime and /proc/uptime). */
export function processStartEpochMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const startTicks = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
  const uptimeS = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
  const bootEpochMs = Date.now() - uptimeS * 1000;
  return bootEpochMs + (startTicks / CLK_TCK) * 1000;
}

/** The epoch ms of the listener's "listener ready" log line (pino `time`), for pid. */
export function listenerReadyEpochMs(fr: FanrecallInstance, pid: number): number {
  for (const line of fr.output().split("\n")) {
    if (!line.startsWith("{") || !line.includes('"listener ready"')) continue;
    const o = JSON.parse(line) as { time?: number; pid?: number; msg?: string };
    if (o.msg === "listener ready" && o.pid === pid && typeof o.time === "number") return o.time;
  }
  throw new Error(`no "listener ready" line for pid ${pid}`);
}
