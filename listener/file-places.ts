// file-places: which namespace a watched directory has in the store, and where a file lies
// in it. Each --watch has its --namespace (same order), or one derived from the host name and
// the watch path (proto/namespace-format.ts), so it survives restarts and a mkfs of the disk.
// A path given by a root admin command is only a label here (the listener never opens it):
// the watch it lies beneath gives the namespace, the rest the record's relative path.
//
// Owns: the watch-to-namespace table. Holds no fds.
import { hostname } from "node:os";
import { defaultNamespace, isNamespaceName, isRelativePath } from "../proto/namespace-format.js";

/** Where a file lies: its watch's namespace and its path relative to the watch. */
export interface FilePlace {
  readonly namespace: string;
  readonly path: string;
}

/** The namespace of each watch: the given ones (one per watch, distinct), else derived. */
export function watchNamespaces(
  watch: readonly string[],
  given: readonly string[],
  host = process.env.FANRECALL_NODE_NAME || hostname(),
): string[] {
  if (given.length > 0 && given.length !== watch.length) {
    throw new Error(
      `--namespace: give one per --watch, in the same order (${watch.length} watches, ${given.length} namespaces)`,
    );
  }
  const names = given.length > 0 ? [...given] : watch.map((w) => defaultNamespace(host, w));
  for (const n of names) if (!isNamespaceName(n)) throw new Error(`--namespace: '${n}' is not a namespace name`);
  if (new Set(names).size !== names.length) throw new Error("--namespace: two watches have the same namespace");
  return names;
}

export class FilePlaces {
  constructor(
    private readonly watch: readonly string[],
    readonly namespaces: readonly string[],
  ) {}

  /** The place of the absolute, normalised `path`: null when it is beneath no watch or not a file's path. */
  of(path: string): FilePlace | null {
    let best = -1;
    for (let i = 0; i < this.watch.length; i++) {
      const w = this.watch[i];
      const under = path.startsWith(w === "/" ? "/" : `${w}/`);
      if (under && (best < 0 || w.length > this.watch[best].length)) best = i;
    }
    if (best < 0) return null;
    const w = this.watch[best];
    const rel = path.slice(w === "/" ? 1 : w.length + 1);
    return isRelativePath(rel) ? { namespace: this.namespaces[best], path: rel } : null;
  }
}
