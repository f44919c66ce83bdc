// mesh-worker: serves mesh admin requests (status, restore, archive of one file) that the
// recall service relays from its TLS admin API. It long-polls TakeAdminWork, resolves each
// path itself beneath a watched directory (watched-path.ts, O_PATH: no content, no event),
// and acts as `fanrecall status|restore|archive` would:
//   - status reads the stub state through /proc/self/fd of the O_PATH fd; nothing is opened
//     for reading, so nothing is recalled;
//   - restore registers a trigger and makes the access itself on libuv's thread pool (open
//     and a 1-byte read), never on the main thread that serves the queue; the recall runs
//     inside that event on its FMODE_NONOTIFY fd, exactly as for the CLI;
//   - archive hands the recall service a read-only fd of the file (it reads and uploads it).
// Restore and archive are done only for a file that the recall service's own uid could read
// by its mode bits (owner or other): through the mesh, the unprivileged side never gets an
// fd of a file it could not open itself.
// Runs only when the listener is started with --mesh-admin true (off by default).
//
// Owns: the poll loop and, per request, the O_PATH fd and any fd it opens (closed before
// the result is sent). Must not own: stub state rules (admin-ops, stub-state) or the wire.
import { close as closeCb, open as openCb, read as readCb } from "node:fs";
import { promisify } from "node:util";
import type { Logger } from "pino";
import * as native from "../native/index.js";
import { FAN } from "../native/index.js";
import type { FdStat } from "../native/index.js";
import { AdminOp } from "../proto/index.js";
import type { AdminWorkItem } from "../proto/index.js";
import { AdminError } from "./admin-ops.js";
import type { AdminOps } from "./admin-ops.js";
import type { WatchMode } from "./fanotify-source.js";
import type { RecallClient } from "./recall-client.js";
import { STUB_XATTR, StubStateError, decodeStubState, needsRecall } from "./stub-state.js";
import type { StubState } from "./stub-state.js";
import type { WatchedPaths } from "./watched-path.js";

export interface MeshWorkerOptions {
  readonly recall: RecallClient;
  readonly ops: AdminOps;
  readonly paths: WatchedPaths;
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
const openAsync = promisify(openCb);
const readAsync = promisify(readCb);
const closeAsync = promisify(closeCb);
const procFd = (fd: number) => `/proc/self/fd/${fd}`;

/** The user's access on the thread pool: open through the O_PATH fd, read one byte, close. */
async function accessOffLoop(opathFd: number): Promise<void> {
  const fd = await openAsync(procFd(opathFd), FAN.O_RDONLY | FAN.O_NOATIME | FAN.O_NONBLOCK);
  try {
    await readAsync(fd, Buffer.alloc(1), 0, 1, 0);
  } finally {
    await closeAsync(fd);
  }
}

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
        await this.once(`restore:${st.dev}:${st.ino}`, () => this.restore(opath, st, stub));
      }
      if (item.op === AdminOp.ARCHIVE && !(stub && needsRecall(stub.state))) {
        await this.once(`archive:${st.dev}:${st.ino}`, () => this.archive(opath));
      }
      return this.statusOf(item.path, opath, mode);
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

  private async restore(opath: number, st: FdStat, stub: StubState): Promise<void> {
    const prepared = this.opts.ops.prepareRestoreOf(st, stub, process.pid);
    if (!("wait" in prepared)) return;
    // The access that raises the trigger event; the work itself happens inside that event.
    const access = accessOffLoop(opath).catch((err: unknown) => err);
    try {
      await prepared.wait;
    } finally {
      await access;
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

  private async archive(opath: number): Promise<void> {
    const fd = await openAsync(procFd(opath), FAN.O_RDONLY | FAN.O_NOATIME | FAN.O_NONBLOCK);
    try {
      await this.opts.ops.archive(fd);
    } finally {
      await closeAsync(fd);
    }
  }

  private statusOf(path: string, opath: number, mode: WatchMode): FileStatus {
    const st = native.fstat(opath);
    const size = BigInt(st.size);
    const stub = this.stubOf(opath);
    if (stub === null) return { path, state: "resident", size, populatedBytes: size };
    const object = { bucket: stub.bucket, key: stub.key, versionId: stub.versionId };
    let state: string = stub.state;
    if (stub.state === "archived" && (st.size !== stub.size || st.mtimeNs !== stub.mtimeNs)) state = "dirty";
    let populated = stub.state === "released" ? 0 : st.size;
    if (stub.state === "partial") {
      // Range mode only: opening for read there raises no event. Whole mode has no partial
      // files of its own making; count allocated blocks instead of opening.
      populated = mode === "range" ? this.partialBytes(opath, st.size) : Math.min(st.size, st.blocks * 512);
    }
    return { path, state, size, populatedBytes: BigInt(populated), object };
  }

  private partialBytes(opath: number, size: number): number {
    const fd = native.openPath(procFd(opath), FAN.O_RDONLY | FAN.O_NOATIME | FAN.O_NONBLOCK);
    try {
      return native.dataBytes(fd, size);
    } finally {
      native.close(fd);
    }
  }
}
