// object-server: real S3 servers for tests: Swift AIO + s3api (via swift-s3.sh) or s3rver (via
// cli/embedded-s3.ts), behind one ObjectServer shape, plus minio client/bucket helpers.
//
// Owns: one temp base dir per server (makeScratchDir; removed by stop()), the choice of free ports,
//   and the server processes it started: Swift's 4 servers (pids in <dir>/run/*.pid, own process groups) or
//   the s3rver child. pause()/resume() SIGSTOP/SIGCONT only the recorded proxy (or s3rver) pid.
// Must not touch: other processes, anything outside its temp dir (swift-s3.sh `install` is the one
//   exception: apt-get, root only), or fanrecall code.
// Timing: node --test runs each test file in its own process, so every file that needs Swift starts
//   its own (~5-7 s after install) and stops it in after(); sharedSwift() only memoizes within one
//   process. A server still running when the process ends (or is killed) is stopped on the way
//   out (teardown.ts): Swift by a synchronous, bounded `swift-s3.sh stop`, s3rver by SIGKILL.
import { execFile, spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "minio";
import { startEmbeddedS3, type EmbeddedS3 } from "../../cli/embedded-s3.js";
import { makeScratchDir } from "./loop-fs.js";
import { undoOnExit } from "./teardown.js";

export interface ObjectServer {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
  kind: "swift" | "s3rver";
  /** Where the server keeps its data and logs (Swift: logs/proxy.log has one line per request). */
  dir: string;
  /** Stops the servers and deletes their data. */
  stop(): Promise<void>;
  /** SIGSTOP the S3 front end (Swift proxy / s3rver): requests hang until resume(). */
  pause(): void;
  resume(): void;
  /** Stops the servers but keeps their data (connections are refused until restart()). */
  kill(): Promise<void>;
  /** Starts again on the same port with the same data. */
  restart(): Promise<void>;
}

export const SWIFT_SCRIPT = fileURLToPath(new URL("./swift-s3.sh", import.meta.url));
const INSTALL_TIMEOUT_MS = 600_000;
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

function runScript(args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("bash", [SWIFT_SCRIPT, ...args], { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`swift-s3.sh ${args.join(" ")} failed: ${err.message}\n${stderr.slice(-4000)}`));
      } else {
        resolve(stdout);
      }
    });
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen({ port, host: "127.0.0.1", exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** A base port P with P..P+count-1 free, below the usual ephemeral range (so restarts keep it). */
export async function findFreePortBlock(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 12_000);
    let ok = true;
    for (let p = base; p < base + count && ok; p++) ok = await portFree(p);
    if (ok) return base;
  }
  throw new Error(`no block of ${count} free ports found on 127.0.0.1`);
}

function parseEnv(text: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) env.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return env;
}

function signal(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined || pid <= 0) throw new Error(`no running server to send ${sig} to`);
  process.kill(pid, sig);
}

export async function startSwift(opts: { port?: number } = {}): Promise<ObjectServer> {
  await runScript(["install"], INSTALL_TIMEOUT_MS);
  const base = makeScratchDir("fanrecall-swift-");
  const dir = base.dir;
  const port = opts.port ?? (await findFreePortBlock(4));
  let proxyPid: number | undefined;
  let running = false;
  let forgetServers = (): void => {};
  const start = async (): Promise<void> => {
    forgetServers = undoOnExit(() => {
      spawnSync("bash", [SWIFT_SCRIPT, "stop", dir], { timeout: 15_000, stdio: "ignore" });
    });
    await runScript(["start", String(port), dir], START_TIMEOUT_MS);
    running = true;
    proxyPid = Number((await readFile(join(dir, "run", "proxy.pid"), "utf8")).trim());
  };
  const kill = async (): Promise<void> => {
    proxyPid = undefined;
    await runScript(["stop", dir], STOP_TIMEOUT_MS);
    running = false;
    forgetServers();
  };
  try {
    await start();
  } catch (err: unknown) {
    // The script stops what it started when start fails; this also covers our own timeout killing it.
    await runScript(["stop", dir], STOP_TIMEOUT_MS).catch(() => undefined);
    forgetServers();
    base.cleanup();
    throw err;
  }
  const env = parseEnv(await runScript(["env", dir], STOP_TIMEOUT_MS));
  return {
    endpoint: env.get("FANRECALL_S3_ENDPOINT") ?? `http://127.0.0.1:${port}`,
    accessKey: env.get("FANRECALL_S3_ACCESS_KEY") ?? "test:tester",
    secretKey: env.get("FANRECALL_S3_SECRET_KEY") ?? "testing",
    region: env.get("FANRECALL_S3_REGION") ?? "us-east-1",
    kind: "swift",
    dir,
    stop: async () => {
      if (running) await kill();
      base.cleanup();
    },
    pause: () => signal(proxyPid, "SIGSTOP"),
    resume: () => signal(proxyPid, "SIGCONT"),
    kill,
    restart: start,
  };
}

export async function startS3rver(opts: { port?: number } = {}): Promise<ObjectServer> {
  const base = makeScratchDir("fanrecall-s3rver-");
  const dataDir = base.dir;
  let s3: EmbeddedS3 | undefined;
  let forgetServer = (): void => {};
  const launch = async (port: number): Promise<EmbeddedS3> => {
    const started = await startEmbeddedS3({ dataDir, port });
    forgetServer = undoOnExit(() => process.kill(started.pid, "SIGKILL"));
    return started;
  };
  try {
    s3 = await launch(opts.port ?? 0);
  } catch (err: unknown) {
    base.cleanup();
    throw err;
  }
  const port = Number(new URL(s3.endpoint).port);
  const kill = async (): Promise<void> => {
    const current = s3;
    s3 = undefined;
    await current?.stop();
    forgetServer();
  };
  return {
    endpoint: s3.endpoint,
    accessKey: s3.accessKey,
    secretKey: s3.secretKey ?? "S3RVER", // no credentials dir: the well-known key
    region: s3.region,
    kind: "s3rver",
    dir: dataDir,
    stop: async () => {
      await kill();
      base.cleanup();
    },
    pause: () => signal(s3?.pid, "SIGSTOP"),
    resume: () => signal(s3?.pid, "SIGCONT"),
    kill,
    restart: async () => {
      if (s3 !== undefined) throw new Error("s3rver is still running; kill() it first");
      s3 = await launch(port);
    },
  };
}

let shared: Promise<ObjectServer> | undefined;

/**
 * One Swift per test process (memoized). The last user stops it in after() (the exit hook is only a
 * net); after stop() or a failed start, the next call starts a new one.
 */
export function sharedSwift(): Promise<ObjectServer> {
  shared ??= startSwift().then(
    (server): ObjectServer => ({
      ...server,
      stop: async () => {
        shared = undefined;
        await server.stop();
      },
    }),
    (err: unknown) => {
      shared = undefined;
      throw err;
    },
  );
  return shared;
}

/** A minio client for the server (path-style, its region, plain HTTP on loopback). */
export function s3Client(server: ObjectServer): Client {
  const url = new URL(server.endpoint);
  return new Client({
    endPoint: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: Number(url.port),
    useSSL: url.protocol === "https:",
    accessKey: server.accessKey,
    secretKey: server.secretKey,
    region: server.region,
    pathStyle: true,
  });
}

export async function makeBucket(server: ObjectServer, name: string): Promise<void> {
  await s3Client(server).makeBucket(name, server.region);
}
