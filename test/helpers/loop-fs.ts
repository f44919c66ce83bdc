// test/helpers/loop-fs.ts: a scratch ext4 filesystem on a loop device, for fanotify tests.
//
// Owns: the image file, its mount point and the mount (tmpfs refuses pre-content marks, and
// filesystem-wide marks must never land on the machine's root fs).
// Must not: be used without root, or leave a mount behind: cleanup() unmounts (lazily if
// busy) and removes the directory. Holds no fds (the loop device auto-detaches on umount).
import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export type Ext4 = { dir: string; image: string; cleanup(): Promise<void> };

export async function makeExt4(sizeMiB = 256): Promise<Ext4> {
  const base = await mkdtemp(join(tmpdir(), "fanrecall-ext4-"));
  // Unprivileged test children must be able to reach files on the mount.
  await chmod(base, 0o755);
  const image = join(base, "image.ext4");
  const dir = join(base, "mnt");
  try {
    await mkdir(dir);
    await run("truncate", ["-s", `${sizeMiB}M`, image]);
    await chmod(image, 0o600);
    await run("mkfs.ext4", ["-q", "-F", image]);
    await run("mount", ["-o", "loop", image, dir]);
    await chmod(dir, 0o755);
  } catch (err: unknown) {
    await unmount(dir).catch(() => undefined);
    await rm(base, { recursive: true, force: true });
    throw err;
  }
  let cleaned = false;
  return {
    dir,
    image,
    async cleanup(): Promise<void> {
      if (cleaned) return;
      cleaned = true;
      await unmount(dir);
      await rm(base, { recursive: true, force: true });
    },
  };
}

async function unmount(dir: string): Promise<void> {
  try {
    await run("umount", [dir]);
  } catch (err: unknown) {
    const stderr = err instanceof Error && "stderr" in err ? String(err.stderr) : "";
    if (/not mounted/.test(stderr)) return;
    if (!/busy/i.test(stderr)) throw err;
    await run("umount", ["-l", dir]);
  }
}
