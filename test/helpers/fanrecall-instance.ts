// test/helpers/fanrecall-instance.ts: runs a real `fanrecall start` (compiled, from dist/)
// for end-to-end tests, and the admin commands against it.
//
// Owns: one supervisor child process (and through it the listener, the recall service and
// maybe the embedded s3rver), its state directory, and its captured output.
// Must not: leave processes behind (stop() sends SIGTERM, then SIGKILL to the process group).
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, rmdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { INSTANCES_DIR, stateRunDir } from "../../ipc/run-dir.js";
import { ensureSystemUser, type SystemUser } from "../../cli/system-user.js";
import type { ObjectServer } from "./object-server.js";
import { runChild } from "./child.js";
import type { ChildResult } from "./child.js";

export const BIN = fileURLToPath(new URL("../../bin/fanrecall.js", import.meta.url));

/**
 * The user `fanrecall start` runs the recall service as (the system user `fanrecall`, created
 * here when missing, as start would): for tests that run the recall service themselves, or
 * give it files it must read. Never 65534, which the tests' readers run as.
 */
export function recallUser(): SystemUser {
  knownRecallUser ??= ensureSystemUser();
  return knownRecallUser;
}
let knownRecallUser: SystemUser | undefined;

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
  const child = spawn(process.execPath, [bin, ...args], { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  child.stdout?.setEncoding("utf8").on("data", (s: string) => (out += s));
  child.stderr?.setEncoding("utf8").on("data", (s: string) => (out += s));
  const deadline = Date.now() + 30_000;
  while (!out.includes("fanrecall start: ready")) {
    if (child.exitCode !== null) throw new Error(`fanrecall start exited ${child.exitCode}:\n${out}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`fanrecall start not ready in 30 s:\n${out}`);
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
        const timer = setTimeout(() => {
          try {
            process.kill(-child.pid!, "SIGKILL");
          } catch {
            // already gone
          }
        }, 20_000);
        const code = await exited;
        clearTimeout(timer);
        if (existsSync(stateDir)) rmSync(stateDir, { recursive: true, force: true });
        return code;
      }
      rmSync(stateDir, { recursive: true, force: true });
      return child.exitCode;
    },
  };
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
 * missing. Call before starting; the returned function, after stopping, removes whichever of
 * the two did not exist before and is empty again (another instance's record keeps them).
 */
export function registryAsFound(): () => void {
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
