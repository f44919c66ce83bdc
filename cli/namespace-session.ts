// namespace-session: what reconcile, rebuild and undelete share before they start: root, the
// running listener that watches their path (its admin socket), its watched directories, and
// the namespace client for the namespace of the directory the path lies beneath.
//
// Owns: the admin connection, the watched directories' fds and the namespace client of one
// command (all closed by close()). Must not own: what the command does.
import { resolve } from "node:path";
import { adminSocketPath } from "../ipc/run-dir.js";
import { isNamespaceName } from "../proto/namespace-format.js";
import { AdminClient } from "./admin-client.js";
import { requireRunDir } from "./instance-registry.js";
import { NamespaceClient } from "./namespace-client.js";
import { WatchRoots } from "./watch-roots.js";
import type { Located } from "./watch-roots.js";

const ROOTS_TIMEOUT_MS = 10_000;

export interface NamespaceSession {
  readonly admin: AdminClient;
  readonly roots: WatchRoots;
  /** Where the command's path lies. */
  readonly at: Located;
  readonly store: NamespaceClient;
  close(): void;
}

/**
 * Opens a session for `path` (absolute or relative, need not exist); `namespace` overrides
 * the namespace of the watched directory (rebuild from another host's namespace).
 */
export async function openNamespaceSession(
  command: string,
  path: string,
  opts: { runDir?: string; namespace?: string },
): Promise<NamespaceSession> {
  if (process.getuid?.() !== 0) throw new Error(`'fanrecall ${command}' must run as root`);
  const abs = resolve(path);
  const runDir = opts.runDir ?? requireRunDir([abs]);
  const admin = new AdminClient(adminSocketPath(runDir));
  let roots: WatchRoots | null = null;
  try {
    roots = WatchRoots.open(await admin.roots(ROOTS_TIMEOUT_MS));
    const at = roots.locate(abs);
    if (at === null) throw new Error(`${abs} is not beneath a directory the listener watches`);
    const namespace = opts.namespace ?? at.namespace;
    if (!isNamespaceName(namespace)) throw new Error(`'${namespace}' is not a namespace name`);
    const store = new NamespaceClient(runDir, namespace);
    const r = roots;
    return {
      admin,
      roots: r,
      at,
      store,
      close: () => {
        store.close();
        r.close();
        admin.close();
      },
    };
  } catch (err: unknown) {
    roots?.close();
    admin.close();
    throw err;
  }
}
