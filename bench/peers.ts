// bench/peers.ts: the baselines fanrecall is compared with, against the same Swift and bucket:
// the tools a user would pick instead (s3fs-fuse, plain, no local cache; rclone mount with
// --vfs-cache-mode full) and a single-stream minio-js GET of the object to a local file; and
// the upload of a local tree as objects (rclone copy), for peers to read it from the store.
//
// Owns: per mount, a temp dir (mount point, rclone's cache and empty config) and the FUSE
// daemon child process, started in the foreground (-f / rclone mount), with a hard timeout.
// unmount() is idempotent: umount (lazy if busy), wait for the daemon, SIGKILL if it lingers,
// remove the temp dir. Callers unmount in finally.
// Must not: touch fanrecall's files or the machine's config (rclone gets a private empty
// config file; s3fs gets the colon key via AWSACCESSKEYID/AWSSECRETACCESSKEY, never a passwd
// file). rclone 1.60 refuses to start with AWS_CA_BUNDLE set, so it is removed from its env.
import { readFileSync, statSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ObjectServer } from "../test/helpers/object-server.js";
import { s3Client } from "../test/helpers/object-server.js";
import { runChild, spawnChild } from "../test/helpers/child.js";
import { nowMs, sleep } from "./measure.js";

export type PeerKind = "s3fs" | "rclone";

export const PEERS: readonly PeerKind[] = ["s3fs", "rclone"];

export interface PeerMount {
  readonly kind: PeerKind;
  /** The mount point: the bucket's root. */
  readonly dir: string;
  /** Time from spawn until the mount showed up in /proc/self/mountinfo. */
  readonly mountMs: number;
  unmount(): Promise<void>;
}

const MOUNT_TIMEOUT_MS = 20_000;
/** A mount lives at most this long; the daemon is SIGKILLed after it. */
const DAEMON_LIFETIME_MS = 30 * 60_000;

function mounted(dir: string): boolean {
  const info = readFileSync("/proc/self/mountinfo", "utf8");
  return info.split("\n").some((line) => line.split(" ")[4] === dir);
}

function argvFor(kind: PeerKind, server: ObjectServer, bucket: string, mnt: string, cacheDir: string): string[] {
  if (kind === "s3fs") {
    return [
      "s3fs",
      bucket,
      mnt,
      "-f",
      "-o",
      `url=${server.endpoint}`,
      "-o",
      "use_path_request_style",
      "-o",
      `endpoint=${server.region}`,
    ];
  }
  return [
    "rclone",
    "mount",
    `bench:${bucket}`,
    mnt,
    "--vfs-cache-mode",
    "full",
    "--cache-dir",
    cacheDir,
    "--config",
    join(cacheDir, "..", "rclone.conf"),
  ];
}

function envFor(kind: PeerKind, server: ObjectServer): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (kind === "s3fs") {
    env.AWSACCESSKEYID = server.accessKey;
    env.AWSSECRETACCESSKEY = server.secretKey;
    return env;
  }
  delete env.AWS_CA_BUNDLE;
  return {
    ...env,
    RCLONE_CONFIG_BENCH_TYPE: "s3",
    RCLONE_CONFIG_BENCH_PROVIDER: "Other",
    RCLONE_CONFIG_BENCH_ACCESS_KEY_ID: server.accessKey,
    RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY: server.secretKey,
    RCLONE_CONFIG_BENCH_ENDPOINT: server.endpoint,
    RCLONE_CONFIG_BENCH_REGION: server.region,
    RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE: "true",
  };
}

async function umount(dir: string): Promise<void> {
  if (!mounted(dir)) return;
  const r = await runChild(["umount", dir], { timeoutMs: 15_000 });
  if (r.code !== 0 && mounted(dir)) await runChild(["umount", "-l", dir], { timeoutMs: 15_000 });
}

/** Mounts `bucket` with s3fs or rclone; the caller must unmount() in finally. */
export async function mountPeer(kind: PeerKind, server: ObjectServer, bucket: string): Promise<PeerMount> {
  const base = await mkdtemp(join(tmpdir(), `fanrecall-bench-${kind}-`));
  const mnt = join(base, "mnt");
  const cacheDir = join(base, "cache");
  await mkdir(mnt);
  await mkdir(cacheDir);
  await writeFile(join(base, "rclone.conf"), "");
  const started = nowMs();
  const daemon = spawnChild(argvFor(kind, server, bucket, mnt, cacheDir), {
    timeoutMs: DAEMON_LIFETIME_MS,
    env: envFor(kind, server),
  });
  let exited = false;
  const done = daemon.result.then(
    (r) => {
      exited = true;
      return r;
    },
    (err: unknown) => {
      exited = true;
      throw err;
    },
  );
  done.catch(() => undefined);
  let unmounted = false;
  const unmount = async (): Promise<void> => {
    if (unmounted) return;
    unmounted = true;
    try {
      await umount(mnt);
      const gone = await Promise.race([done.then(() => true).catch(() => true), sleep(5_000).then(() => exited)]);
      if (!gone) daemon.kill();
      await done.catch(() => undefined);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  };
  try {
    const deadline = started + MOUNT_TIMEOUT_MS;
    while (!mounted(mnt)) {
      if (exited) {
        const r = await done;
        throw new Error(`${kind} exited before mounting (${r.code ?? r.signal}): ${r.stderr.slice(-2000)}`);
      }
      if (nowMs() > deadline) throw new Error(`${kind} did not mount within ${MOUNT_TIMEOUT_MS} ms`);
      await sleep(10);
    }
    return { kind, dir: mnt, mountMs: nowMs() - started, unmount };
  } catch (err: unknown) {
    await unmount();
    throw err;
  }
}

/** Mounts, runs `fn`, and always unmounts. */
export async function withPeer<T>(
  kind: PeerKind,
  server: ObjectServer,
  bucket: string,
  fn: (m: PeerMount) => Promise<T>,
): Promise<T> {
  const m = await mountPeer(kind, server, bucket);
  try {
    return await fn(m);
  } finally {
    await m.unmount();
  }
}

/** Single-stream minio-js fGetObject of bucket/key to a temp file; returns the time in ms. */
export async function minioGet(server: ObjectServer, bucket: string, key: string, size: number): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), "fanrecall-bench-get-"));
  let timer: NodeJS.Timeout | undefined;
  try {
    const file = join(dir, "object");
    const client = s3Client(server);
    const started = nowMs();
    await Promise.race([
      client.fGetObject(bucket, key, file),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`minio GET of ${key} took over 120 s`)), 120_000);
      }),
    ]);
    const ms = nowMs() - started;
    const got = statSync(file).size;
    if (got !== size) throw new Error(`minio GET of ${key}: ${got} bytes, expected ${size}`);
    return ms;
  } finally {
    clearTimeout(timer);
    await rm(dir, { recursive: true, force: true });
  }
}

const UPLOAD_TIMEOUT_MS = 20 * 60_000;

/** `rclone copy` of local `dir` into `bucket` (keys: paths relative to dir), 16 transfers at once. */
export async function uploadTree(server: ObjectServer, bucket: string, dir: string): Promise<void> {
  const base = await mkdtemp(join(tmpdir(), "fanrecall-bench-upload-"));
  try {
    const config = join(base, "rclone.conf");
    await writeFile(config, "");
    const argv = [
      "rclone",
      "copy",
      dir,
      `bench:${bucket}`,
      "--config",
      config,
      "--transfers",
      "16",
      "--checkers",
      "16",
      // no HEAD of each object after its PUT (rclone checks the PUT's answer instead)
      "--s3-no-head",
    ];
    const r = await runChild(argv, { timeoutMs: UPLOAD_TIMEOUT_MS, env: envFor("rclone", server) });
    if (r.code !== 0)
      throw new Error(`rclone copy to ${bucket} failed (${r.code ?? r.signal}): ${r.stderr.slice(-2000)}`);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}
