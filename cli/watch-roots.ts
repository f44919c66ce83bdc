// watch-roots: where the admin commands may resolve a path, and how. The listener names its
// watched directories with the (dev, ino) each had when it started; each is opened here
// O_PATH and kept only if it is still that very directory. A path argument is then resolved
// by openat2 relative to the fd of the watched directory it lies beneath, with
// RESOLVE_BENEATH | NO_SYMLINKS | NO_MAGICLINKS | NO_XDEV (native openBeneath): no symlink in
// any component, no "..", no mount crossing, and nothing outside the watched directory. An
// O_PATH open reads nothing and raises no fanotify event, so resolving a stub recalls nothing.
//
// Without the listener (status only), `unconfined()` resolves from "/" refusing every
// symlink on the way (openat2 RESOLVE_NO_SYMLINKS), not confined beneath a watched directory.
//
// Owns: one O_PATH directory fd per watched directory (closed in close()). Must not own: the
// fds it hands out (the caller closes them) or what is done with the files. Never follows a
// symlink beneath a watched directory.
import { readlinkSync } from "node:fs";
import * as native from "../native/index.js";
import { FAN } from "../native/index.js";
import { isNamespaceName } from "../proto/namespace-format.js";
import type { ReasonName } from "../proto/reasons.js";

/** A watched directory as the listener reports it (listener/admin-server.ts). */
export interface WatchRootInfo {
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
  /** Its namespace in the store (proto/namespace-format.ts). */
  readonly namespace: string;
}

/** Where a path lies: its watched directory (the fd is borrowed) and the path relative to it ("" for the directory itself). */
export interface Located {
  readonly rootFd: number;
  readonly rootPath: string;
  readonly rel: string;
  readonly namespace: string;
}

/** A path the commands refuse, with a reason of the closed set (proto/reasons.ts). */
export class ResolveError extends Error {
  override readonly name = "ResolveError";
  constructor(
    readonly reason: ReasonName,
    message: string,
  ) {
    super(message);
  }
}

interface Root {
  /** The path the listener was given and the directory's path as the kernel names it now. */
  readonly names: readonly string[];
  readonly fd: number;
  readonly namespace: string;
}

export const SYMLINK_ON_THE_WAY = "a symlink is on the way to this path; root commands never follow one";

export function isRootInfoList(v: unknown): v is WatchRootInfo[] {
  return (
    Array.isArray(v) &&
    v.every((r: unknown) => {
      if (typeof r !== "object" || r === null) return false;
      const { path, dev, ino, namespace } = r as Record<string, unknown>;
      return (
        typeof path === "string" &&
        path.startsWith("/") &&
        typeof dev === "number" &&
        typeof ino === "number" &&
        typeof namespace === "string" &&
        isNamespaceName(namespace)
      );
    })
  );
}

export class WatchRoots {
  private constructor(
    private readonly roots: Root[],
    private readonly confined: boolean,
  ) {}

  /** The listener's watched directories that are still the directories it watches. */
  static open(infos: readonly WatchRootInfo[]): WatchRoots {
    const roots: Root[] = [];
    for (const info of infos) {
      let fd: number;
      try {
        fd = native.openPath(info.path, FAN.O_PATH | FAN.O_DIRECTORY);
      } catch {
        continue; // gone: nothing can be beneath it
      }
      const st = native.fstat(fd);
      if (st.dev !== info.dev || st.ino !== info.ino) {
        native.close(fd); // the path names another directory now, not the watched one
        continue;
      }
      roots.push({
        names: [...new Set([info.path, readlinkSync(`/proc/self/fd/${fd}`)])],
        fd,
        namespace: info.namespace,
      });
    }
    return new WatchRoots(roots, true);
  }

  /** Resolution from "/" refusing every symlink, with no watched directory to stay beneath. */
  static unconfined(): WatchRoots {
    return new WatchRoots([], false);
  }

  /** An O_PATH fd of the absolute, normalised `path` (the caller closes it); throws ResolveError. */
  open(path: string): number {
    try {
      if (!this.confined) return native.openNoSymlinks(path, FAN.O_PATH);
      const found = this.beneath(path);
      if (!found) throw new ResolveError("invalid-path", "not beneath a directory the listener watches");
      return native.openBeneath(found.root.fd, found.rel);
    } catch (err: unknown) {
      throw resolveError(err);
    }
  }

  /** A new O_PATH fd of the watched directory at exactly `path`, if there is one (a walk reaching a mount). */
  rootAt(path: string): number | null {
    const root = this.roots.find((r) => r.names.includes(path));
    return root ? native.dup(root.fd) : null;
  }

  /** The watched directory the absolute, normalised `path` lies beneath (it need not exist). */
  locate(path: string): Located | null {
    const found = this.beneath(path);
    if (!found) return null;
    const rel = found.rel === "." ? "" : found.rel;
    return { rootFd: found.root.fd, rootPath: found.root.names[0], rel, namespace: found.root.namespace };
  }

  private beneath(path: string): { root: Root; rel: string } | null {
    let best: { root: Root; name: string } | null = null;
    for (const root of this.roots) {
      for (const name of root.names) {
        const under = path === name || path.startsWith(name === "/" ? "/" : `${name}/`);
        if (under && (best === null || name.length > best.name.length)) best = { root, name };
      }
    }
    if (best === null) return null;
    return { root: best.root, rel: path.slice(best.name.length).replace(/^\/+/, "") || "." };
  }

  close(): void {
    for (const r of this.roots) native.close(r.fd);
    this.roots.length = 0;
  }
}

/** The reason and message for a failed resolution. */
export function resolveError(err: unknown): ResolveError {
  if (err instanceof ResolveError) return err;
  const code = native.isNativeError(err) ? err.code : "";
  if (code === "ELOOP") return new ResolveError("invalid-path", SYMLINK_ON_THE_WAY);
  if (code === "EXDEV") return new ResolveError("invalid-path", "the path crosses into another mount");
  if (code === "ENOENT") return new ResolveError("not-found", "ENOENT: no such file or directory");
  if (code === "ENOTDIR") return new ResolveError("not-found", "ENOTDIR: a component is not a directory");
  if (code === "EACCES" || code === "EPERM") return new ResolveError("not-permitted", `${code}: permission denied`);
  return new ResolveError("invalid-path", `cannot resolve the path (${code || String(err)})`);
}
