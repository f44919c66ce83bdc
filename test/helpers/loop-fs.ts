// test/helpers/loop-fs.ts: scratch places for tests: temporary directories, filesystems
// (ext4, xfs or btrfs) on loop devices, tmpfs mounts and bind mounts.
//
// Owns: each directory, image file, loop device and mount it makes (tmpfs refuses
// pre-content marks, and filesystem-wide marks must never land on the machine's root fs).
// Must not: mount without root, or leave anything behind. cleanup() unmounts (lazily if
// busy), detaches the loop device (lazily too: losetup -d on a busy device detaches it when
// the last user goes) and removes the directory, never through a mount (nothing is removed
// while anything is mounted beneath it); a failed setup does the same before it throws. Each
// thing is registered with teardown.ts the moment it exists, so a test that fails, or a test
// process that exits or is killed (SIGTERM, SIGINT, SIGHUP) before cleanup() runs, still
// leaves nothing: it is unmounted lazily, detached and removed, synchronously, on the way out.
// Holds no fds.
import { execFile, execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { chmod, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { isAbsolute, join } from "node:path";
import { promisify } from "node:util";
import { undoOnExit } from "./teardown.js";

const run = promisify(execFile);
const QUIET = { stdio: "ignore" } as const;

/** Unmounts `dir` (lazily when busy); never throws: isMountPointSync() tells what came of it. */
function unmountSync(dir: string): void {
  try {
    execFileSync("umount", [dir], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (err: unknown) {
    const stderr = err instanceof Error && "stderr" in err ? String(err.stderr) : "";
    if (/not mounted|no mount point/i.test(stderr)) return;
    try {
      execFileSync("umount", ["-l", dir], QUIET);
    } catch {
      // gone meanwhile, or really stuck: the caller checks
    }
  }
}

/** Detaches every loop device backed by `image` (lazily when busy); never throws. */
function detachSync(image: string): void {
  let out: string;
  try {
    out = execFileSync("losetup", ["-n", "-O", "NAME", "-j", image], { encoding: "utf8" });
  } catch {
    return; // no losetup, or the image is gone
  }
  for (const dev of out
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)) {
    try {
      execFileSync("losetup", ["-d", dev], QUIET);
    } catch {
      // already detached
    }
  }
}

/** The mount points at or beneath `dir` in this mount namespace (/proc/self/mounts). */
function mountsAtOrBeneath(dir: string): string[] {
  let real: string;
  try {
    real = realpathSync(dir);
  } catch {
    return []; // gone
  }
  return readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((line) =>
      (line.split(" ")[1] ?? "").replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))),
    )
    .filter((target) => target === real || target.startsWith(`${real}/`));
}

function isMountPointSync(dir: string): boolean {
  const mounts = mountsAtOrBeneath(dir);
  return mounts.length > 0 && mounts.includes(realpathSync(dir));
}

/**
 * Removes `dir` and all in it, never through a mount: throws, removing nothing, while anything
 * is mounted at or beneath it (a bind mount of the same filesystem included, which
 * `rm --one-file-system` would not see). In this process, with no child a signal could stop.
 */
function removeTreeSync(dir: string): void {
  const mounts = mountsAtOrBeneath(dir);
  if (mounts.length > 0) throw new Error(`${dir} not removed: ${mounts.join(", ")} still mounted`);
  rmSync(dir, { recursive: true, force: true });
}

/** A directory of the caller's, removed by cleanup() or when the process ends. */
export type ScratchDir = { readonly dir: string; cleanup(): void };

/**
 * A new directory (mkdtemp of `prefix`, below the temp dir unless absolute), with `mode`
 * (default mkdtemp's 0700). cleanup() removes it and all in it, never through a mount.
 */
export function makeScratchDir(prefix: string, mode?: number): ScratchDir {
  const dir = mkdtempSync(isAbsolute(prefix) ? prefix : join(tmpdir(), prefix));
  const forget = undoOnExit(() => removeTreeSync(dir));
  if (mode !== undefined) chmodSync(dir, mode);
  return {
    dir,
    cleanup: () => {
      removeTreeSync(dir);
      forget();
    },
  };
}

/** A mount made here: where it is, and its cleanup (which throws if it is still mounted). */
export type ScratchMount = { readonly dir: string; cleanup(): Promise<void> };

/** Unmounts `dir` and detaches `image`'s loop devices; throws while `dir` is still a mount point. */
function unmountOrThrow(dir: string, image: string | undefined): void {
  unmountSync(dir);
  if (image !== undefined) detachSync(image);
  // Never rm through a live mount: that would empty the filesystem and still fail.
  if (isMountPointSync(dir)) throw new Error(`${dir} is still mounted`);
}

/**
 * Runs `setup`, which mounts something on `dir` (a loop device of `image`, when given), and
 * returns the undo of that mount. A failed setup is undone before the error is rethrown.
 */
async function mountWith(dir: string, image: string | undefined, setup: () => Promise<void>): Promise<() => void> {
  const forget = undoOnExit(() => unmountOrThrow(dir, image));
  const undo = (): void => {
    unmountOrThrow(dir, image);
    forget();
  };
  try {
    await setup();
  } catch (err: unknown) {
    try {
      undo();
    } catch {
      // still mounted: the exit undo stays registered
    }
    throw err;
  }
  return undo;
}

/** Removes a scratch directory after a failed setup; what cannot go yet is left to the exit undo. */
function cleanupAfterFailure(base: ScratchDir): void {
  try {
    base.cleanup();
  } catch {
    // something is still mounted in it
  }
}

/** A bind mount of `source` on the existing directory `target`, read-only when asked. */
export async function bindMount(
  source: string,
  target: string,
  opts: { readonly readOnly?: boolean } = {},
): Promise<ScratchMount> {
  const unmountIt = await mountWith(target, undefined, async () => {
    await run("mount", ["--bind", source, target]);
    if (opts.readOnly) await run("mount", ["-o", "remount,bind,ro", target]);
  });
  return { dir: target, cleanup: async () => unmountIt() };
}

/** A tmpfs of `sizeMiB` (mode 0755) on a new scratch directory. */
export async function makeTmpfs(sizeMiB: number): Promise<ScratchMount> {
  const base = makeScratchDir("fanrecall-tmpfs-");
  let unmountIt: () => void;
  try {
    unmountIt = await mountWith(base.dir, undefined, async () => {
      await run("mount", ["-t", "tmpfs", "-o", `size=${sizeMiB}m,mode=0755`, "tmpfs", base.dir]);
    });
  } catch (err: unknown) {
    cleanupAfterFailure(base);
    throw err;
  }
  return {
    dir: base.dir,
    cleanup: async () => {
      unmountIt();
      base.cleanup();
    },
  };
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
  // Unprivileged test children must be able to reach files on the mount.
  const base = makeScratchDir(`fanrecall-${type}-`, 0o755);
  const image = join(base.dir, `image.${type}`);
  const dir = join(base.dir, "mnt");
  let unmountIt: () => void;
  try {
    await mkdir(dir);
    await run("truncate", ["-s", `${sizeMiB}M`, image]);
    await chmod(image, 0o600);
    const [cmd, ...args] = mkfs.argv;
    await run(cmd, [...args, image]);
    unmountIt = await mountWith(dir, image, async () => {
      await run("mount", ["-o", "loop", image, dir]);
      await chmod(dir, 0o755);
      // A test named for a filesystem must really run on it.
      const { stdout } = await run("findmnt", ["-n", "-o", "FSTYPE", "--mountpoint", dir]);
      if (stdout.trim() !== type)
        throw new Error(`makeLoopFs: ${dir} is ${stdout.trim() || "not mounted"}, not ${type}`);
    });
  } catch (err: unknown) {
    cleanupAfterFailure(base);
    throw err;
  }
  let cleaned = false;
  return {
    type,
    dir,
    image,
    async cleanup(): Promise<void> {
      if (cleaned) return;
      unmountIt();
      base.cleanup();
      cleaned = true;
    },
  };
}

/** A scratch ext4 (the default for tests that do not care which filesystem). */
export function makeExt4(sizeMiB = 256): Promise<Ext4> {
  return makeLoopFs("ext4", sizeMiB);
}

/**
 * Loses the disk: unmounts the filesystem, makes a new, empty one on its image and mounts it
 * at the same place (the mount must not be busy: stop whatever watches it first). The undo
 * registered for the first mount covers the new one, and cleanup() removes it as before.
 */
export async function remakeLoopFs(fs: LoopFs): Promise<void> {
  await run("umount", [fs.dir]);
  detachSync(fs.image);
  const [cmd, ...args] = MKFS[fs.type].argv;
  await run(cmd, [...args, fs.image]);
  await run("mount", ["-o", "loop", fs.image, fs.dir]);
  await chmod(fs.dir, 0o755);
}
