// mesh-worker: serves mesh admin requests (status, restore, archive of one file) that the
// recall service relays from its TLS admin API. It long-polls TakeAdminWork, resolves each
// path itself beneath a watched directory (watched-path.ts, O_PATH: no content, no event),
// and acts as `fanrecall status|restore|archive` would:
//   - status reads the stub state through /proc/self/fd of the O_PATH fd; nothing is opened
//     for reading, so nothing is recalled;
//   - restore and archive reopen the inode read-only through the listener's private view
//     (no event) and run exactly as for the CLI (admin-ops): the recall service gets that
//     read-only fd to archive, or a writable one of the same view to recall.
// Restore and archive are done only for a file that the recall service's own uid could read
// by its mode bits (owner or other): through the mesh, the unprivileged side never gets an
// fd of a file it could not open itself.
// Runs only when the listener is started with --mesh-admin true (off by default).
//
// Owns: the poll loop and, per request, the O_PATH fd and any fd it opens (closed before
// the result is sent). Must not own: stub state rules (admin-ops, stub-state) or the wire.
import type { Logger } from "pino";
import * as native from "../native/index.js";
import type { FdStat } from "../native/index.js";
import { AdminOp } from "../proto/index.js";
import type { AdminWorkItem } from "../proto/index.js";
import { AdminError, OwnedFd } from "./admin-ops.js";
import type { AdminOps } from "./admin-ops.js";
import type { WatchMode } from "./fanotify-source.js";
import type { RecallClient } from "./recall-client.js";
import { STUB_XATTR, StubStateError, decodeStubState, needsRecall } from "./stub-state.js";
import type { StubState } from "./stub-state.js";
import type { WatchedPaths } from "./watched-path.js";
import type { WritableViews } from "./writable-view.js";

export interface MeshWorkerOptions {
  readonly recall: RecallClient;
  readonly ops: AdminOps;
  readonly paths: WatchedPaths;
  readonly views: WritableViews;
  readonly modeOf: (dev: number) => WatchMode | undefined;
  readonly recallUid: number;
  readonly log: Logger;
}

interface FileStatus {
  path: string;
  state: string;
  size: bigint;
  populatedBytes: bigint;
  object?: { bucket: string; key: string; versionId: string };
}

const POLL_MS = 20_000;
const procFd = (fd: number) => `/proc/self/fd/${fd}`;

export class MeshWorker {
  private running = false;
  /** Restores and archives in progress, by operation and inode: concurrent requests join them. */
  private readonly inProgress = new Map<string, Promise<void>>();

  constructor(private readonly opts: MeshWorkerOptions) {}

  start(): void {
    this.running = true;
    void this.loop();
  }

  stop(): void {
    this.running = false;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const r = await this.opts.recall.takeAdminWork(POLL_MS);
      if (!this.running) break;
      if (!r.ok) {
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        continue;
      }
      for (const item of r.value.items) void this.serve(item);
    }
  }

  private async serve(item: AdminWorkItem): Promise<void> {
    let result;
    try {
      result = { workId: item.workId, ok: true, status: await this.run(item) };
    } catch (err: unknown) {
      const reason = err instanceof AdminError ? err.reason : "protocol-error";
      const message = err instanceof Error ? err.message : String(err);
      this.opts.log.warn({ op: AdminOp[item.op], reason, err: message }, "mesh admin request failed");
      result = { workId: item.workId, ok: false, errorReason: reason, message };
    }
    await this.opts.recall.finishAdminWork(result);
  }

  private async run(item: AdminWorkItem): Promise<FileStatus> {
    const opath = this.opts.paths.resolve(item.path);
    try {
      const st = native.fstat(opath);
      const mode = this.opts.modeOf(st.dev);
      if (!mode) throw new AdminError("invalid-path", "not on a watched filesystem");
      const stub = this.stubOf(opath);
      if (item.op !== AdminOp.STATUS && item.op !== AdminOp.RESTORE && item.op !== AdminOp.ARCHIVE) {
        throw new AdminError("invalid-path", "unknown admin operation");
      }
      if (item.op !== AdminOp.STATUS) this.requireReadableByRecallUser(st, AdminOp[item.op].toLowerCase());
      if (item.op === AdminOp.RESTORE && stub && needsRecall(stub.state)) {
        await this.once(`restore:${st.dev}:${st.ino}`, () =>
          this.withViewFd(opath, st, (fd) => this.opts.ops.restore(fd)),
        );
      }
      if (item.op === AdminOp.ARCHIVE && !(stub && needsRecall(stub.state))) {
        await this.once(`archive:${st.dev}:${st.ino}`, () =>
          this.withViewFd(opath, st, (fd) => this.opts.ops.archive(fd)),
        );
      }
      return this.statusOf(item.path, opath);
    } finally {
      native.close(opath);
    }
  }

  /**
   * Runs `work` unless the same operation on the same inode is already running, in which
   * case it waits for that one (two triggers on one inode would replace each other).
   */
  private async once(key: string, work: () => Promise<void>): Promise<void> {
    const running = this.inProgress.get(key);
    if (running) return running;
    const p = work().finally(() => this.inProgress.delete(key));
    this.inProgress.set(key, p);
    return p;
  }

  private stubOf(opath: number): StubState | null {
    const raw = native.getxattr(procFd(opath), STUB_XATTR);
    if (raw === null) return null;
    try {
      return decodeStubState(raw);
    } catch (err: unknown) {
      throw new AdminError("stub-corrupt", err instanceof StubStateError ? err.message : "corrupt stub state");
    }
  }

  /** Runs `work` with the listener's own read-only fd of the inode (private view: no event). */
  private async withViewFd(opath: number, st: FdStat, work: (fd: number) => Promise<unknown>): Promise<void> {
    const file = new OwnedFd(this.opts.views.reopen(opath, st, "read"));
    try {
      await work(file.fd);
    } finally {
      file.close();
    }
  }

  /**
   * Restore and archive hand the recall service an fd of the file: through the mesh, only of
   * a file its own uid could read by the mode bits (owner or other; groups are not counted).
   */
  private requireReadableByRecallUser(st: FdStat, op: string): void {
    const readable = (st.uid === this.opts.recallUid && (st.mode & 0o400) !== 0) || (st.mode & 0o004) !== 0;
    if (!readable) {
      throw new AdminError(
        "not-permitted",
        `the recall service's user cannot read this file; ${op} it with 'fanrecall ${op}' as root`,
      );
    }
  }

  private statusOf(path: string, opath: number): FileStatus {
    const st = native.fstat(opath);
    const size = BigInt(st.size);
    const stub = this.stubOf(opath);
    if (stub === null) return { path, state: "resident", size, populatedBytes: size };
    const object = { bucket: stub.bucket, key: stub.key, versionId: stub.versionId };
    let state: string = stub.state;
    if (stub.state === "archived" && (st.size !== stub.size || st.mtimeNs !== stub.mtimeNs)) state = "dirty";
    let populated = stub.state === "released" ? 0 : st.size;
    if (stub.state === "partial") {
      // Through the private view: no event, whatever the mode.
      populated = this.partialBytes(opath, st);
    }
    return { path, state, size, populatedBytes: BigInt(populated), object };
  }

  private partialBytes(opath: number, st: FdStat): number {
    const fd = this.opts.views.reopen(opath, st, "read");
    try {
      return native.dataBytes(fd, st.size);
    } finally {
      native.close(fd);
    }
  }
}
