// mesh-worker: serves mesh admin requests (status, restore, archive of one file) that the
// recall service relays from its TLS admin API. It long-polls TakeAdminWork, resolves each
// path itself beneath a watched directory with the recall service's own credentials
// (watched-path.ts: O_PATH, no content, no event; the kernel decides as for that user, ACLs
// and every directory's search bit included), and acts as `fanrecall status|restore|archive`
// would:
//   - status reads the stub state through /proc/self/fd of the O_PATH fd; nothing is opened
//     for reading, so nothing is recalled;
//   - restore and archive reopen the inode read-only through the listener's private view
//     (no event) and run exactly as for the CLI (admin-ops): the recall service gets that
//     read-only fd to archive, or a writable one of the same view to recall.
// A file the recall service's user could not open itself gets not-permitted for all three,
// and nothing about it (state, size, object) is told.
// The recall service is not trusted to pace this: at most MAX_IN_FLIGHT requests run at
// once; the listener asks for no more than it can start, drops a reply longer than
// MAX_ITEMS_PER_TAKE and answers items beyond its free slots at once with overloaded; it
// polls again only when a slot is free. Runs only with --mesh-admin true (off by default).
//
// Owns: the poll loop and, per request, the O_PATH fd and the one view fd it opens (closed
// before the result is sent). Must not own: stub state rules or the status shape (admin-ops,
// stub-store) or the wire.
import type { Logger } from "pino";
import * as native from "../native/index.js";
import type { FdStat } from "../native/index.js";
import { AdminOp } from "../proto/index.js";
import type { AdminWorkItem } from "../proto/index.js";
import { AdminError, OwnedFd, stubOrRefuse } from "./admin-ops.js";
import type { AdminOps } from "./admin-ops.js";
import type { FilePlaces } from "./file-places.js";
import type { WatchMode } from "./fanotify-source.js";
import type { FdChannel } from "./fd-channel.js";
import type { RecallClient } from "./recall-client.js";
import { needsRecall } from "./stub-state.js";
import { fileStatus } from "./stub-store.js";
import type { StubStore } from "./stub-store.js";
import type { WatchedPaths } from "./watched-path.js";
import type { WritableViews } from "./writable-view.js";

export interface MeshWorkerOptions {
  readonly recall: RecallClient;
  readonly ops: AdminOps;
  readonly stubs: Pick<StubStore, "readOPath">;
  readonly paths: WatchedPaths;
  /** The namespace and relative path an archive records. */
  readonly places: Pick<FilePlaces, "of">;
  readonly views: WritableViews;
  readonly modeOf: (dev: number) => WatchMode | undefined;
  /** Whose credentials paths are resolved with: the recall service's, from its end of the fd channel. */
  readonly channel: Pick<FdChannel, "peerCred">;
  readonly log: Logger;
}

/** A file's status on the wire (AdminFileStatus). */
interface WireStatus {
  path: string;
  state: string;
  size: bigint;
  populatedBytes: bigint;
  object?: { bucket: string; key: string; versionId: string };
}

const POLL_MS = 20_000;
/** Mesh requests served at once (each holds an O_PATH fd and at most one view fd). */
export const MAX_IN_FLIGHT = 16;
/** A TakeAdminWork reply with more items than this is a broken contract: dropped unanswered. */
export const MAX_ITEMS_PER_TAKE = 64;
/** A reply that came back faster than this with nothing in it: wait before polling again. */
const FAST_EMPTY_MS = 50;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class MeshWorker {
  private running = false;
  private inFlight = 0;
  private slotFreed: (() => void) | null = null;
  /** Counts of dropped replies and overloaded answers since the last summary line. */
  private refused = { replies: 0, items: 0, since: 0 };
  /** Restores and archives in progress, by operation and inode: concurrent requests join them. */
  private readonly inProgress = new Map<string, Promise<void>>();

  constructor(private readonly opts: MeshWorkerOptions) {}

  start(): void {
    this.running = true;
    void this.loop();
  }

  stop(): void {
    this.running = false;
    this.slotFreed?.();
  }

  /** Requests being served now (never more than MAX_IN_FLIGHT). */
  get active(): number {
    return this.inFlight;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      while (this.inFlight >= MAX_IN_FLIGHT && this.running) {
        await new Promise<void>((resolve) => (this.slotFreed = resolve));
      }
      if (!this.running) break;
      const asked = MAX_IN_FLIGHT - this.inFlight;
      const started = Date.now();
      const r = await this.opts.recall.takeAdminWork(POLL_MS, asked);
      if (!this.running) break;
      if (!r.ok) {
        await sleep(1_000);
        continue;
      }
      const items = r.value.items;
      if (items.length > MAX_ITEMS_PER_TAKE) {
        this.noteRefused(1, items.length);
        await sleep(1_000);
        continue;
      }
      if (items.length === 0 && Date.now() - started < FAST_EMPTY_MS) await sleep(FAST_EMPTY_MS);
      const overloaded: Array<Promise<unknown>> = [];
      for (const item of items) {
        if (this.inFlight < MAX_IN_FLIGHT) void this.serve(item);
        else overloaded.push(this.answerOverloaded(item));
      }
      if (overloaded.length > 0) {
        this.noteRefused(0, overloaded.length);
        // Answered before the next poll: at most MAX_ITEMS_PER_TAKE such answers are pending.
        await Promise.all(overloaded);
      }
    }
  }

  private answerOverloaded(item: AdminWorkItem) {
    return this.opts.recall.finishAdminWork({
      workId: item.workId,
      ok: false,
      errorReason: "overloaded",
      message: `the listener is serving ${MAX_IN_FLIGHT} mesh requests; try again later`,
    });
  }

  /** One summary line per 10 s at most (a hostile or broken peer can cause this at any rate). */
  private noteRefused(replies: number, items: number): void {
    this.refused.replies += replies;
    this.refused.items += items;
    if (Date.now() - this.refused.since < 10_000) return;
    this.opts.log.warn(
      { droppedReplies: this.refused.replies, refusedItems: this.refused.items, reason: "overloaded" },
      "mesh work refused: more than the listener asked for or can serve",
    );
    this.refused = { replies: 0, items: 0, since: Date.now() };
  }

  private async serve(item: AdminWorkItem): Promise<void> {
    this.inFlight++;
    try {
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
    } finally {
      this.inFlight--;
      const wake = this.slotFreed;
      this.slotFreed = null;
      wake?.();
    }
  }

  private async run(item: AdminWorkItem): Promise<WireStatus> {
    if (item.op !== AdminOp.STATUS && item.op !== AdminOp.RESTORE && item.op !== AdminOp.ARCHIVE) {
      throw new AdminError("invalid-path", "unknown admin operation");
    }
    let cred: native.UserCred;
    try {
      cred = this.opts.channel.peerCred();
    } catch {
      throw new AdminError("recall-unavailable", "the recall service's credentials are unknown (no fd channel)");
    }
    // Resolved as the recall service's user, readable by it: or not-permitted, before anything is told.
    const opath = this.opts.paths.resolve(item.path, cred);
    try {
      const st = native.fstat(opath);
      const mode = this.opts.modeOf(st.dev);
      if (!mode) throw new AdminError("invalid-path", "not on a watched filesystem");
      const stub = stubOrRefuse(this.opts.stubs.readOPath(opath));
      if (item.op === AdminOp.RESTORE && stub && needsRecall(stub.state)) {
        await this.once(`restore:${st.dev}:${st.ino}`, () =>
          this.withViewFd(opath, st, (fd) => this.opts.ops.restore(fd)),
        );
      }
      if (item.op === AdminOp.ARCHIVE && !(stub && needsRecall(stub.state))) {
        await this.once(`archive:${st.dev}:${st.ino}`, () =>
          this.withViewFd(opath, st, (fd) => this.opts.ops.archive(fd, this.opts.places.of(item.path))),
        );
      }
      return this.statusOf(item.path, opath);
    } finally {
      native.close(opath);
    }
  }

  /**
   * Runs `work` unless the same operation on the same inode is already running, in which
   * case it waits for that one (a second archive would upload the file again).
   */
  private async once(key: string, work: () => Promise<void>): Promise<void> {
    const running = this.inProgress.get(key);
    if (running) return running;
    const p = work().finally(() => this.inProgress.delete(key));
    this.inProgress.set(key, p);
    return p;
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

  /** As `fanrecall status` reports it (stub-store fileStatus); a corrupt stub state is an error here. */
  private statusOf(path: string, opath: number): WireStatus {
    const st = native.fstat(opath);
    const stub = stubOrRefuse(this.opts.stubs.readOPath(opath));
    const s = fileStatus(st, stub, () => this.dataBytes(opath, st));
    const wire = { path, state: s.state, size: BigInt(s.size), populatedBytes: BigInt(s.populatedBytes) };
    return s.object === null ? wire : { ...wire, object: s.object };
  }

  /** Bytes present, counted through the private view: no event, whatever the mode. */
  private dataBytes(opath: number, st: FdStat): number {
    const fd = this.opts.views.reopen(opath, st, "read");
    try {
      return native.dataBytes(fd, st.size);
    } finally {
      native.close(fd);
    }
  }
}
