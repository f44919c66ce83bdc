// embedded-s3: starts the quick-start's embedded S3 server (s3rver 3.7.1 + shim) as a child process.
//
// Owns: checking that s3rver (an optionalDependency) is installed, in one clear line if not;
//   creating (and, with uid/gid, chowning) the data dir; spawning one child
//   `node [--import tsx] s3rver-main.{js,ts} --dir D --address A --port P --silent --watch-stdin
//   [--credentials-dir C] [--peer-uid U]` (as uid/gid when given, with an environment holding
//   nothing but PATH: the child needs none of this process's); waiting, bounded, for its `{"ready":true,"port":N}` line; stopping it
//   (SIGTERM, bounded wait, then SIGKILL).
// Must not own: the server itself (cli/s3rver-main.ts), bucket creation, or any fanrecall config;
//   it never kills a process other than the child it spawned.
// Holds: the child's pid and its stdin/stdout/stderr pipes. Closing stdin (e.g. when this process
//   dies) makes the child exit; stdout/stderr are drained for the child's lifetime and stderr lines
//   go to opts.log.
import { spawn, type ChildProcess } from "node:child_process";
import { chown, lchown, lstat, mkdir, readdir } from "node:fs/promises";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

export interface EmbeddedS3Options {
  dataDir: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Run the child as this user/group when given. */
  uid?: number;
  gid?: number;
  /**
   * The store's only credentials: DIR/access-key and DIR/secret-key (see s3-credentials.ts),
   * read by the child itself. Without it: the well-known S3RVER/S3RVER (tests only).
   */
  credentials?: { dir: string; accessKey: string };
  /** Only connections from sockets this uid owns are served (the others are closed unread). */
  peerUid?: number;
  log?: (msg: string) => void;
}

export interface EmbeddedS3 {
  endpoint: string;
  accessKey: string;
  /** null with opts.credentials: the secret stays in its file, which the client reads itself. */
  secretKey: string | null;
  region: "us-east-1";
  pid: number;
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
const KILL_TIMEOUT_MS = 2_000;
const STDERR_KEEP = 8192;

/** node argv for the child: compiled JS when this module runs from dist/, tsx otherwise. */
function childArgv(): string[] {
  const here = import.meta.url;
  if (here.endsWith(".js")) {
    return [fileURLToPath(new URL("./s3rver-main.js", here))];
  }
  // Resolve tsx from this module (not from the child's cwd) so any cwd works.
  return ["--import", import.meta.resolve("tsx"), fileURLToPath(new URL("./s3rver-main.ts", here))];
}

/**
 * s3rver is an optionalDependency (the production images leave it out): without it, say in
 * one line what to do instead of letting the child die with a stack trace.
 */
function assertS3rverInstalled(): void {
  try {
    import.meta.resolve("s3rver");
  } catch {
    const here = dirname(fileURLToPath(import.meta.url)); // dist/cli or cli
    const root = import.meta.url.endsWith(".js") ? dirname(dirname(here)) : dirname(here);
    throw new Error(
      `the embedded demo store needs the optional package s3rver, which is not installed in ${root}: run 'npm install --include=optional' there, or set FANRECALL_S3_ENDPOINT to a real S3 store`,
    );
  }
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off("exit", onExit);
      resolve(false);
    }, ms);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once("exit", onExit);
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGCONT"); // a paused child must be able to act on SIGTERM
  child.kill("SIGTERM");
  if (await waitExit(child, STOP_TIMEOUT_MS)) return;
  child.kill("SIGKILL");
  if (!(await waitExit(child, KILL_TIMEOUT_MS))) {
    throw new Error(`embedded S3 server (pid ${child.pid}) did not exit after SIGKILL`);
  }
}

/** Resolves with the port from the child's ready line; rejects (child killed) on exit/timeout. */
function waitReady(child: ChildProcess, stderrTail: () => string): Promise<number> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const fail = (why: string): void => {
      cleanup();
      const done = (): void => reject(new Error(`embedded S3 server ${why}; stderr:\n${stderrTail() || "(empty)"}`));
      stopChild(child).then(done, done);
    };
    const onData = (chunk: string): void => {
      buf += chunk;
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        const port = readyPort(line);
        if (port !== undefined) {
          cleanup();
          resolve(port);
          return;
        }
      }
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void =>
      fail(`exited before it was ready (code ${code}, signal ${signal})`);
    const onError = (err: Error): void => fail(`could not be spawned: ${err.message}`);
    const timer = setTimeout(() => fail(`was not ready within ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.off("exit", onExit);
      child.off("error", onError);
      child.stdout?.resume(); // keep draining after the ready line
    };
    child.stdout?.setEncoding("utf8").on("data", onData);
    child.once("exit", onExit);
    child.once("error", onError);
  });
}

function readyPort(line: string): number | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const msg: unknown = JSON.parse(line);
    if (typeof msg === "object" && msg !== null && "ready" in msg && "port" in msg) {
      const { ready, port } = msg;
      if (ready === true && typeof port === "number") return port;
    }
  } catch {
    // not our line
  }
  return undefined;
}

/** lchown of dir and everything beneath it; symlinks are re-owned, never followed. */
async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) await chownTree(path, uid, gid);
    await lchown(path, uid, gid);
  }
  await lchown(dir, uid, gid);
}

export async function startEmbeddedS3(opts: EmbeddedS3Options): Promise<EmbeddedS3> {
  assertS3rverInstalled();
  const host = opts.host ?? "127.0.0.1";
  const log = opts.log ?? ((): void => {});
  // Parents get the default mode (a 0700 parent owned by root would lock out uid); the data dir 0700.
  await mkdir(dirname(opts.dataDir), { recursive: true });
  await mkdir(opts.dataDir, { mode: 0o700 }).catch((err: unknown) => {
    if (!(err instanceof Error && "code" in err && err.code === "EEXIST")) throw err;
  });
  if (opts.uid !== undefined || opts.gid !== undefined) {
    const st = await lstat(opts.dataDir);
    // Data an earlier start left as another user (65534, before the dedicated user): hand it over.
    if ((opts.uid !== undefined && st.uid !== opts.uid) || (opts.gid !== undefined && st.gid !== opts.gid)) {
      await chownTree(opts.dataDir, opts.uid ?? -1, opts.gid ?? -1);
    }
    await chown(opts.dataDir, opts.uid ?? -1, opts.gid ?? -1);
  }
  const args = [
    ...childArgv(),
    ...["--dir", opts.dataDir, "--address", host, "--port", String(opts.port ?? 0), "--silent", "--watch-stdin"],
    ...(opts.credentials ? ["--credentials-dir", opts.credentials.dir] : []),
    ...(opts.peerUid !== undefined ? ["--peer-uid", String(opts.peerUid)] : []),
  ];
  const child = spawn(process.execPath, args, {
    stdio: ["pipe", "pipe", "pipe"],
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
    ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
  });
  let stderrTail = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderrTail = (stderrTail + chunk).slice(-STDERR_KEEP);
    for (const line of chunk.split("\n")) if (line.trim() !== "") log(`embedded-s3: ${line}`);
  });
  const port = await waitReady(child, () => stderrTail);
  const pid = child.pid ?? -1;
  log(`embedded-s3: demo object store (s3rver, not for real data) pid ${pid} on http://${host}:${port}`);
  return {
    endpoint: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    accessKey: opts.credentials?.accessKey ?? "S3RVER",
    secretKey: opts.credentials ? null : "S3RVER",
    region: "us-east-1",
    pid,
    stop: () => stopChild(child),
  };
}
