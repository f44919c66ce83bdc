// test/helpers/fanrecall-instance.ts: runs a real `fanrecall start` (compiled, from dist/)
// for end-to-end tests, and the admin commands against it.
//
// Owns: one supervisor child process (and through it the listener, the recall service and
// maybe the embedded s3rver), its state directory, its captured output, and what `fanrecall
// start` adds to the machine: the instance registry's directories and the recall user.
// Must not: leave anything behind. stop() sends SIGTERM, then SIGKILL to the process group,
// and removes the state directory and the registry directories it made; if the test process
// ends (or is killed) first, teardown.ts SIGKILLs the group and every process naming the state
// directory, and removes the same and the instance record the killed start left. A recall
// user this process found missing is deleted when the process ends.
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { INSTANCES_DIR, stateRunDir } from "../../ipc/run-dir.js";
import { RECALL_USER_NAME, ensureSystemUser, lookupUser, type SystemUser } from "../../cli/system-user.js";
import type { ObjectServer } from "./object-server.js";
import { runChild } from "./child.js";
import type { ChildResult } from "./child.js";
import { killAllWithSync } from "./procs.js";
import { undoOnExit } from "./teardown.js";

export const BIN = fileURLToPath(new URL("../../bin/fanrecall.js", import.meta.url));

/**
 * The user `fanrecall start` runs the recall service as (the system user `fanrecall`, created
 * here when missing, as start would): for tests that run the recall service themselves, or
 * give it files it must read. Never 65534, which the tests' readers run as.
 */
export function recallUser(): SystemUser {
  recallUserAsFound();
  knownRecallUser ??= ensureSystemUser();
  return knownRecallUser;
}
let knownRecallUser: SystemUser | undefined;
let recallUserChecked = false;

/**
 * Before the first thing that may create the recall user (recallUser(), `fanrecall start`):
 * when it does not exist yet, it is deleted again when this process ends, after everything
 * started later (so everything that ran as it) is gone.
 */
function recallUserAsFound(): void {
  if (recallUserChecked) return;
  recallUserChecked = true;
  if (lookupUser(RECALL_USER_NAME) !== null) return;
  undoOnExit(() => {
    // --force: a process SIGKILLed on the way out may not be reaped yet.
    spawnSync("userdel", ["--force", RECALL_USER_NAME], { stdio: "ignore", timeout: 15_000 });
  });
}

export interface FanrecallInstance {
  readonly stateDir: string;
  readonly runDir: string;
  readonly child: ChildProcess;
  output(): string;
  cli(args: readonly string[], timeoutMs?: number): Promise<ChildResult>;
  /** An admin command as a person runs it: no --run-dir, no FANRECALL_RUN_DIR (found by path). */
  cliByPath(args: readonly string[], timeoutMs?: number): Promise<ChildResult>;
  /** Runs `fanrecall status --json` and returns one object per file. */
  status(
    paths: readonly string[],
  ): Promise<
    Array<{ path: string; state: string; size: number; populatedBytes: number; object: { key: string } | null }>
  >;
  stop(): Promise<number | null>;
}

export interface StartOptions {
  readonly watch: readonly string[];
  /** A real S3 server; without it the embedded s3rver starts. */
  readonly server?: ObjectServer;
  readonly bucket?: string;
  readonly extraArgs?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Reuse this state directory (one a killed instance left, with its holder still running)
   * instead of a fresh one; stop() removes it as usual.
   */
  readonly stateDir?: string;
  /** The fanrecall executable to run (default: this checkout's bin/fanrecall.js). */
  readonly bin?: string;
}

export async function startFanrecall(opts: StartOptions): Promise<FanrecallInstance> {
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), "fanrecall-state-"));
  const runDir = stateRunDir(stateDir);
  const env: NodeJS.ProcessEnv = { ...process.env, FANRECALL_LOG_LEVEL: "info", ...opts.env };
  for (const k of Object.keys(env)) if (k.startsWith("FANRECALL_S3_")) delete env[k];
  if (opts.server) {
    Object.assign(env, {
      FANRECALL_S3_ENDPOINT: opts.server.endpoint,
      FANRECALL_S3_ACCESS_KEY: opts.server.accessKey,
      FANRECALL_S3_SECRET_KEY: opts.server.secretKey,
      FANRECALL_S3_REGION: opts.server.region,
      FANRECALL_S3_BUCKET: opts.bucket ?? "fanrecall-e2e",
    });
  }
  const args = [
    "start",
    "--state-dir",
    stateDir,
    ...opts.watch.flatMap((w) => ["--watch", w]),
    ...(opts.extraArgs ?? []),
  ];
  const bin = opts.bin ?? BIN;
  recallUserAsFound();
  const restoreRegistry = registryAsFound();
  const child = spawn(process.execPath, [bin, ...args], { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  // Kept until the process ends (idempotent): stop() may leave a holder that the test kills itself.
  const undo = (): void => {
    if (child.pid !== undefined) signalGroup(child.pid, "SIGKILL");
    killAllWithSync(stateDir);
    rmSync(stateDir, { recursive: true, force: true });
    if (child.pid !== undefined) removeRecordOf(child.pid);
    restoreRegistry();
  };
  undoOnExit(undo);
  let out = "";
  child.stdout?.setEncoding("utf8").on("data", (s: string) => (out += s));
  child.stderr?.setEncoding("utf8").on("data", (s: string) => (out += s));
  const deadline = Date.now() + 30_000;
  while (!out.includes("fanrecall start: ready")) {
    if (child.exitCode !== null || Date.now() > deadline) {
      undo();
      throw new Error(
        `fanrecall start ${child.exitCode !== null ? `exited ${child.exitCode}` : "not ready in 30 s"}:\n${out}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const cli = (cliArgs: readonly string[], timeoutMs = 120_000) =>
    runChild([process.execPath, bin, ...cliArgs], { timeoutMs, env: { ...process.env, FANRECALL_RUN_DIR: runDir } });
  const cliByPath = (cliArgs: readonly string[], timeoutMs = 120_000) => {
    const cliEnv = { ...process.env };
    delete cliEnv.FANRECALL_RUN_DIR;
    return runChild([process.execPath, bin, ...cliArgs], { timeoutMs, env: cliEnv });
  };
  return {
    stateDir,
    runDir,
    child,
    output: () => out,
    cli,
    cliByPath,
    status: async (paths) => {
      const r = await cli(["status", "--json", ...paths]);
      if (r.code !== 0) throw new Error(`status failed: ${r.stderr}`);
      return r.stdout
        .toString()
        .trim()
        .split("\n")
        .filter(Boolean)
        .map(
          (l) =>
            JSON.parse(l) as {
              path: string;
              state: string;
              size: number;
              populatedBytes: number;
              object: { key: string } | null;
            },
        );
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
        child.kill("SIGTERM");
        const timer = setTimeout(() => signalGroup(child.pid!, "SIGKILL"), 20_000);
        const code = await exited;
        clearTimeout(timer);
        if (existsSync(stateDir)) rmSync(stateDir, { recursive: true, force: true });
        restoreRegistry();
        return code;
      }
      rmSync(stateDir, { recursive: true, force: true });
      restoreRegistry();
      return child.exitCode;
    },
  };
}

/** Sends `signal` to the process group `pgid`; nothing when it is gone. */
function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

/**
 * The instance record a killed `fanrecall start` (pid `startPid`) left in INSTANCES_DIR. Not
 * called by stop(): that a start stopped with SIGTERM removes its own record is tested.
 */
function removeRecordOf(startPid: number): void {
  if (!existsSync(INSTANCES_DIR)) return;
  for (const name of readdirSync(INSTANCES_DIR)) {
    const file = join(INSTANCES_DIR, name);
    try {
      if ((JSON.parse(readFileSync(file, "utf8")) as { pid?: unknown }).pid === startPid) rmSync(file, { force: true });
    } catch {
      // not a record, or gone meanwhile
    }
  }
}

/**
 * The recall service's /metrics URL, once it has logged its port (started with
 * FANRECALL_METRICS_ADDRESS=127.0.0.1:0); fails after 20 s.
 */
export async function metricsUrlOf(fr: FanrecallInstance): Promise<string> {
  const deadline = Date.now() + 20_000;
  let m: RegExpExecArray | null;
  while ((m = /"metricsPort":(\d+)/.exec(fr.output())) === null) {
    if (Date.now() > deadline) throw new Error("the recall service did not report its metrics port");
    await new Promise((r) => setTimeout(r, 100));
  }
  return `http://127.0.0.1:${m[1]}/metrics`;
}

/**
 * `fanrecall start` records itself in INSTANCES_DIR (under /run/fanrecall), creating both when
 * missing. Called before starting; the returned function, after stopping, removes whichever of
 * the two did not exist before and is empty again (another instance's record keeps them).
 */
function registryAsFound(): () => void {
  const made = [INSTANCES_DIR, dirname(INSTANCES_DIR)].filter((d) => !existsSync(d));
  return () => {
    for (const d of made) {
      try {
        rmdirSync(d);
      } catch {
        // not empty: in use by another instance
      }
    }
  };
}
