// test/helpers/hostile-stack.ts: a listener, a real recall service and the hostile recall
// service (hostile-recall.ts) in front of it, each a real process, for the tests of what a
// compromised recall service can and cannot do. The listener (root, from dist/) talks to the
// hostile one's sockets in RUN_DIR/recall; the hostile one relays to the real one's sockets in
// a second run directory. Both recall-side processes run as RECALL_UID, the uid the listener
// is told to trust (--recall-uid) and the real service is told to accept (--listener-uid). No
// holder: the listener alone answers its group.
//
// Owns: the three child processes (SIGKILLed with the test process through setpriv
// --pdeathsig), a temporary base directory (run dirs, the mode file) and their captured
// output. Must not: leave processes or directories behind (stop() ends and removes them).
import assert from "node:assert/strict";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { adminSocketPath, fdChannelSocketPath, recallGrpcSocketPath, recallSocketDir } from "../../ipc/run-dir.js";
import { decodeStubState } from "../../listener/stub-state.js";
import type { StubState } from "../../listener/stub-state.js";
import * as native from "../../native/index.js";
import { OTHER_UID, nodeEvalArgv, runChild, setprivAs, spawnChild } from "./child.js";
import type { ChildResult, Spawned } from "./child.js";
import { BIN } from "./fanrecall-instance.js";
import type { HostileMode } from "./hostile-recall.js";
import type { ObjectServer } from "./object-server.js";
import { alive, waitFor } from "./procs.js";

/**
 * The recall uid of this harness: not root, not 65534 (`fanrecall start`'s default) and not
 * OTHER_UID (the readers), so every check by uid tells the three apart.
 */
export const RECALL_UID = 4321;

const HOSTILE_URL = new URL("./hostile-recall.ts", import.meta.url).href;
const PDEATHSIG = "--pdeathsig=SIGKILL";

export interface HostileStackOptions {
  readonly watch: string;
  readonly server: ObjectServer;
  readonly bucket: string;
  readonly recallTimeoutMs: number;
}

export interface HostileStack {
  readonly runDir: string;
  readonly listener: Spawned;
  /** Switches the hostile service's mode and waits until it says it is in effect. */
  setMode(mode: HostileMode, arg?: string): Promise<void>;
  /** The hostile acts reported since start (one object per line of the proxy's stdout). */
  acts(act?: string): Array<Record<string, string | number | boolean>>;
  /** The hostile service's output (its acts, and anything it wrote to stderr) so far. */
  hostileOutput(): string;
  /** The listener's output (pino JSON lines) so far. */
  listenerOutput(): string;
  /** Runs a fanrecall admin command against this listener. */
  cli(args: readonly string[], timeoutMs?: number): Promise<ChildResult>;
  /** Reads `path` as OTHER_UID: `cat`, or `dd` of `count` bytes at `offset`; `ms` is how long it took. */
  read(path: string, range?: { offset: number; count: number }): Promise<ChildResult & { ms: number }>;
  /** The decoded trusted.fanrecall of `path` (null: none); throws when it does not decode. */
  stubState(path: string): StubState | null;
  stop(): Promise<void>;
}

function collect(spawned: Spawned): () => string {
  let out = "";
  spawned.child.stdout?.on("data", (b: Buffer) => (out += b.toString()));
  spawned.child.stderr?.on("data", (b: Buffer) => (out += b.toString()));
  return () => out;
}

function s3Env(o: HostileStackOptions): NodeJS.ProcessEnv {
  return {
    ...process.env,
    FANRECALL_S3_ENDPOINT: o.server.endpoint,
    FANRECALL_S3_ACCESS_KEY: o.server.accessKey,
    FANRECALL_S3_SECRET_KEY: o.server.secretKey,
    FANRECALL_S3_REGION: o.server.region,
    FANRECALL_S3_BUCKET: o.bucket,
  };
}

/** Makes RUN_DIR/recall the recall uid's, as `fanrecall start` does. */
function makeRecallDir(runDir: string): void {
  const dir = recallSocketDir(runDir);
  mkdirSync(dir, { recursive: true });
  chownSync(dir, RECALL_UID, RECALL_UID);
  chmodSync(dir, 0o750);
}

async function stopChild(s: Spawned | undefined, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (!s) return;
  if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill(signal);
  const timer = setTimeout(() => s.kill(), 15_000);
  await s.result.catch(() => undefined);
  clearTimeout(timer);
}

export async function startHostileStack(opts: HostileStackOptions): Promise<HostileStack> {
  const base = mkdtempSync(join(tmpdir(), "fanrecall-hostile-"));
  chmodSync(base, 0o755);
  const runDir = join(base, "run");
  const realRun = join(base, "real");
  mkdirSync(runDir, { mode: 0o755 });
  mkdirSync(realRun, { mode: 0o755 });
  makeRecallDir(runDir);
  makeRecallDir(realRun);
  const modeFile = join(base, "mode");
  writeFileSync(modeFile, "honest\n", { mode: 0o644 });
  const started: Spawned[] = [];
  const long = { timeoutMs: 3_600_000 };
  try {
    const [setpriv, ...drop] = setprivAs(RECALL_UID);
    const real = spawnChild(
      [setpriv, PDEATHSIG, ...drop, process.execPath, BIN, "recall-service", "--run-dir", realRun],
      { ...long, env: { ...s3Env(opts), FANRECALL_LISTENER_UID: String(RECALL_UID) } },
    );
    started.push(real);
    const realOut = collect(real);
    await waitFor(
      `the real recall service:\n${realOut()}`,
      () => existsSync(recallGrpcSocketPath(realRun)) && existsSync(fdChannelSocketPath(realRun)),
      20_000,
    );
    const args = ["--listen", runDir, "--forward", realRun, "--mode-file", modeFile];
    const source = `import { hostileRecallMain } from ${JSON.stringify(HOSTILE_URL)}; hostileRecallMain(${JSON.stringify(args)});`;
    const hostile = spawnChild([setpriv, PDEATHSIG, ...drop, ...nodeEvalArgv(source)], long);
    started.push(hostile);
    const hostileOut = collect(hostile);
    await waitFor(
      `the hostile recall service:\n${hostileOut()}`,
      () => hostileOut().includes('"event":"ready"'),
      20_000,
    );
    const env: NodeJS.ProcessEnv = { ...process.env, FANRECALL_LOG_LEVEL: "info" };
    for (const k of Object.keys(env)) if (k.startsWith("FANRECALL_S3_")) delete env[k];
    const listenerArgs = ["listener", "--watch", opts.watch, "--run-dir", runDir, "--recall-uid", String(RECALL_UID)];
    listenerArgs.push("--recall-timeout-ms", String(opts.recallTimeoutMs), "--holder-socket", "");
    const listener = spawnChild(["setpriv", PDEATHSIG, process.execPath, BIN, ...listenerArgs], { ...long, env });
    started.push(listener);
    const listenerOut = collect(listener);
    await waitFor(
      `the listener:\n${listenerOut()}`,
      () => listenerOut().includes('"msg":"listener ready"') && existsSync(adminSocketPath(runDir)),
      30_000,
    );
    const acts = () =>
      hostileOut()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, string | number | boolean>);
    return {
      runDir,
      listener,
      async setMode(mode, arg = "") {
        const current = () =>
          acts()
            .filter((a) => a.event === "mode")
            .at(-1) ?? { mode: "honest", arg: "" };
        // The service acknowledges changes only: the mode it already has needs no wait.
        if (current().mode === mode && current().arg === arg) return;
        // Whole or not at all: the service polls the file.
        writeFileSync(`${modeFile}.new`, `${mode} ${arg}\n`, { mode: 0o644 });
        renameSync(`${modeFile}.new`, modeFile);
        await waitFor(
          `the hostile service to take mode ${mode} ${arg}`,
          () => current().mode === mode && current().arg === arg,
          5_000,
        );
      },
      acts: (name) => acts().filter((a) => name === undefined || a.act === name),
      hostileOutput: hostileOut,
      listenerOutput: listenerOut,
      cli: (cliArgs, timeoutMs = 120_000) =>
        runChild([process.execPath, BIN, ...cliArgs], {
          timeoutMs,
          env: { ...process.env, FANRECALL_RUN_DIR: runDir },
        }),
      async read(path, range) {
        const argv = range
          ? ["dd", `if=${path}`, "bs=4096", `skip=${range.offset / 4096}`, `count=${range.count / 4096}`, "status=none"]
          : ["cat", path];
        const t0 = Date.now();
        const r = await runChild([...setprivAs(OTHER_UID), ...argv], { timeoutMs: 60_000 });
        return { ...r, ms: Date.now() - t0 };
      },
      stubState(path) {
        const raw = native.getxattr(path, "trusted.fanrecall");
        return raw === null ? null : decodeStubState(raw);
      },
      async stop() {
        await stopChild(listener);
        await stopChild(hostile);
        await stopChild(real);
        rmSync(base, { recursive: true, force: true });
      },
    };
  } catch (err: unknown) {
    for (const s of started.reverse()) await stopChild(s, "SIGKILL");
    rmSync(base, { recursive: true, force: true });
    throw err;
  }
}

/** The listener process is still running. */
export function assertAlive(stack: HostileStack, what: string): void {
  assert.ok(alive(stack.listener.pid), `${what}: the listener died\n${stack.listenerOutput().slice(-3000)}`);
}
