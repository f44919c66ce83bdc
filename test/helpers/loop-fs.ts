// test/helpers/loop-fs.ts: a scratch filesystem (ext4, xfs or btrfs) on a loop device, for
// fanotify tests.
//
// Owns: the image file, its mount point and the mount (tmpfs refuses pre-content marks, and
// filesystem-wide marks must never land on the machine's root fs).
// Must not: be used without root, or leave a mount behind: cleanup() unmounts (lazily if
// busy), detaches the loop device (lazily too: losetup -d on a busy device detaches it when
// the last user goes) and removes the directory, and a failed setup does the same before it
// throws. A test that fails, or a test process that exits or is killed (SIGTERM, SIGINT,
// SIGHUP: the test runner's timeout) before cleanup() runs, still leaves nothing: every live
// filesystem is unmounted lazily and detached, synchronously, on the way out. Holds no fds.
import { execFile, execFileSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm } from "node:fs/promises";
import { constants, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Filesystems made here and not yet cleaned up: undone on exit whatever the test did. */
const live = new Map<string, { dir: string; image: string }>();
const SIGNALS = ["SIGTERM", "SIGINT", "SIGHUP"] as const;
let hooked = false;

/** Synchronous (it runs from 'exit'): lazy unmount, loop detach, never throws. */
function undoSync(dir: string, image: string): void {
  const quiet = { stdio: "ignore" } as const;
  try {
    execFileSync("umount", ["-l", dir], quiet);
  } catch {
    // not mounted (any more)
  }
  try {
    const out = execFileSync("losetup", ["-n", "-O", "NAME", "-j", image], { encoding: "utf8" });
    for (const dev of out
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean)) {
      try {
        execFileSync("losetup", ["-d", dev], quiet);
      } catch {
        // already detached
      }
    }
  } catch {
    // no losetup, or the image is gone
  }
}

function undoAllSync(): void {
  for (const [base, fs] of live) {
    undoSync(fs.dir, fs.image);
    live.delete(base);
  }
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", undoAllSync);
  for (const sig of SIGNALS) {
    process.once(sig, () => {
      undoAllSync();
      // End as the signal would have without this handler, unless someone else handles it.
      if (process.listenerCount(sig) === 0) process.exit(128 + constants.signals[sig]);
    });
  }
}

export type LoopFsType = "ext4" | "xfs" | "btrfs";

export type LoopFs = { type: LoopFsType; dir: string; image: string; cleanup(): Promise<void> };

/** Kept for the callers that only ever wanted ext4. */
export type Ext4 = LoopFs;

/** mkfs command line (the image path is appended) and the smallest image it accepts. */
const MKFS: Record<LoopFsType, { argv: readonly string[]; minMiB: number }> = {
  ext4: { argv: ["mkfs.ext4", "-q", "-F"], minMiB: 1 },
  // xfsprogs >= 5.19 refuses filesystems under 300 MiB.
  xfs: { argv: ["mkfs.xfs", "-q", "-f"], minMiB: 300 },
  // Below ~128 MiB btrfs wants --mixed block groups, which is not the layout people run.
  btrfs: { argv: ["mkfs.btrfs", "-q", "-f"], minMiB: 128 },
};

export async function makeLoopFs(type: LoopFsType, sizeMiB: number): Promise<LoopFs> {
  const mkfs = MKFS[type];
  if (sizeMiB < mkfs.minMiB) throw new Error(`makeLoopFs: ${type} needs at least ${mkfs.minMiB} MiB, not ${sizeMiB}`);
  const base = await mkdtemp(join(tmpdir(), `fanrecall-${type}-`));
  const image = join(base, `image.${type}`);
  const dir = join(base, "mnt");
  hookExit();
  live.set(base, { dir, image });
  try {
    // Unprivileged test children must be able to reach files on the mount.
    await chmod(base, 0o755);
    await mkdir(dir);
    await run("truncate", ["-s", `${sizeMiB}M`, image]);
    await chmod(image, 0o600);
    const [cmd, ...args] = mkfs.argv;
    await run(cmd, [...args, image]);
    await run("mount", ["-o", "loop", image, dir]);
    await chmod(dir, 0o755);
    // A test named for a filesystem must really run on it.
    const { stdout } = await run("findmnt", ["-n", "-o", "FSTYPE", "--mountpoint", dir]);
    if (stdout.trim() !== type) throw new Error(`makeLoopFs: ${dir} is ${stdout.trim() || "not mounted"}, not ${type}`);
  } catch (err: unknown) {
    await unmount(dir).catch(() => undefined);
    await detach(image);
    if (!(await isMountPoint(dir))) {
      await rm(base, { recursive: true, force: true });
      live.delete(base);
    }
    throw err;
  }
  let cleaned = false;
  return {
    type,
    dir,
    image,
    async cleanup(): Promise<void> {
      if (cleaned) return;
      cleaned = true;
      let unmountError: Error | undefined;
      await unmount(dir).catch((err: unknown) => {
        unmountError = err instanceof Error ? err : new Error(String(err));
      });
      await detach(image);
      // Never rm through a live mount: that would empty the filesystem and still fail.
      if (await isMountPoint(dir)) throw unmountError ?? new Error(`makeLoopFs: ${dir} is still mounted`);
      await rm(base, { recursive: true, force: true });
      live.delete(base);
    },
  };
}

/** A scratch ext4 (the default for tests that do not care which filesystem). */
export function makeExt4(sizeMiB = 256): Promise<Ext4> {
  return makeLoopFs("ext4", sizeMiB);
}

async function unmount(dir: string): Promise<void> {
  try {
    await run("umount", [dir]);
  } catch (err: unknown) {
    const stderr = err instanceof Error && "stderr" in err ? String(err.stderr) : "";
    if (/not mounted|no mount point/i.test(stderr)) return;
    await run("umount", ["-l", dir]);
  }
}

/** Detaches every loop device backed by `image` (lazily when busy); never throws. */
async function detach(image: string): Promise<void> {
  let out: string;
  try {
    ({ stdout: out } = await run("losetup", ["-n", "-O", "NAME", "-j", image]));
  } catch {
    return;
  }
  for (const dev of out
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)) {
    await run("losetup", ["-d", dev]).catch(() => undefined);
  }
}

async function isMountPoint(dir: string): Promise<boolean> {
  try {
    await run("findmnt", ["-n", "--mountpoint", dir]);
    return true;
  } catch {
    return false; // findmnt exits 1 when nothing is mounted there
  }
}

/**
 * Loses the disk: unmounts the filesystem, makes a new, empty one on its image and mounts it
 * at the same place (the mount must not be busy: stop whatever watches it first).
 */
export async function remakeLoopFs(fs: LoopFs): Promise<void> {
  await run("umount", [fs.dir]);
  await detach(fs.image);
  const [cmd, ...args] = MKFS[fs.type].argv;
  await run(cmd, [...args, fs.image]);
  await run("mount", ["-o", "loop", fs.image, fs.dir]);
  await chmod(fs.dir, 0o755);
}
