// test/helpers/child.ts: spawning test children, optionally as an unprivileged user.
//
// Owns: the setpriv command line that drops to uid/gid 65534 with no groups, no inheritable
// or bounding capabilities and no_new_privs; collecting stdout/stderr; a hard timeout that
// SIGKILLs. setpriv execs the target, so the child's pid is the target program's pid.
// Must not: leave children behind: every spawned process has a timeout and kill(), and is
// SIGKILLed if the test process ends (or is killed) first (teardown.ts).
// Fds: only the child's stdio pipes, closed when the child exits.
import { spawn, type ChildProcess } from "node:child_process";
import { unprivilegedArgs } from "../../cli/system-user.js";
import { undoOnExit } from "./teardown.js";

export const NOBODY = 65534;

export const SETPRIV_NOBODY = ["setpriv", ...unprivilegedArgs(NOBODY, NOBODY)] as const;

export type ChildResult = { code: number | null; signal: NodeJS.Signals | null; stdout: Buffer; stderr: string };

export type SpawnOptions = {
  timeoutMs?: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Fds the child gets as its fds 3, 4, ... (the caller keeps its copies). */
  extraFds?: readonly number[];
};

export type Spawned = { child: ChildProcess; pid: number; result: Promise<ChildResult>; kill(): void };

export function spawnChild(argv: readonly string[], options: SpawnOptions = {}): Spawned {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error("spawnChild: empty argv");
  const child = spawn(cmd, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe", ...(options.extraFds ?? [])],
  });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout?.on("data", (b: Buffer) => stdout.push(b));
  child.stderr?.on("data", (b: Buffer) => stderr.push(b));
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  const timer = setTimeout(kill, options.timeoutMs ?? 15_000);
  const forget = undoOnExit(kill);
  const result = new Promise<ChildResult>((resolve, reject) => {
    child.on("error", (err) => {
      clearTimeout(timer);
      forget();
      reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      forget();
      resolve({ code, signal, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr).toString() });
    });
  });
  if (child.pid === undefined) {
    result.catch(() => undefined);
    throw new Error(`spawnChild: could not spawn ${cmd}`);
  }
  return { child, pid: child.pid, result, kill };
}

/** Spawns argv as uid/gid 65534 without capabilities. */
export function spawnAsNobody(argv: readonly string[], options: SpawnOptions = {}): Spawned {
  return spawnChild([...SETPRIV_NOBODY, ...argv], options);
}

export function runAsNobody(argv: readonly string[], options: SpawnOptions = {}): Promise<ChildResult> {
  return spawnAsNobody(argv, options).result;
}

/**
 * An unprivileged uid/gid with no passwd entry and nothing in common with 65534 (which
 * `fanrecall start` gives the recall service by default): a reader that is nobody else.
 */
export const OTHER_UID = 1234;

/** The setpriv prefix of SETPRIV_NOBODY for any uid/gid. */
export function setprivAs(uid: number, gid = uid): string[] {
  return ["setpriv", ...unprivilegedArgs(uid, gid)];
}

/** Runs argv as uid/gid `uid` (same hardening as runAsNobody). */
export function runAsUid(uid: number, argv: readonly string[], options: SpawnOptions = {}): Promise<ChildResult> {
  return spawnChild([...setprivAs(uid), ...argv], options).result;
}

export function runChild(argv: readonly string[], options: SpawnOptions = {}): Promise<ChildResult> {
  return spawnChild(argv, options).result;
}

/** Absolute URL of the tsx loader, so `--import` works whatever the child's cwd is. */
export const TSX_LOADER_URL = import.meta.resolve("tsx");

/** URL of the native facade source, for child scripts run under tsx. */
export const NATIVE_FACADE_URL = new URL("../../native/index.ts", import.meta.url).href;

/** argv running an ES module source text under node + tsx. */
export function nodeEvalArgv(source: string): string[] {
  return [process.execPath, "--import", TSX_LOADER_URL, "--input-type=module", "-e", source];
}
