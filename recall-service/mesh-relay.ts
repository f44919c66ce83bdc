// mesh-relay: carries mesh admin requests (status, restore, archive of one path) to the
// listener and its results back. The listener long-polls with TakeAdminWork and answers each
// item with FinishAdminWork; it alone resolves the path (beneath a directory it watches) and
// decides what, if anything, the recall service gets to see of the file.
//
// Bounded on both sides: at most MAX_WAITING requests wait here (more get RESOURCE_EXHAUSTED
// at once), and one poll gets at most as many items as the listener asked for and never more
// than MAX_BATCH (the listener drops a longer reply); the rest stay queued until it asks again.
//
// Owns: the queue of items not yet taken, the items taken but not finished, and the one
// waiting poll. Must not own: paths as files (it never opens, stats or resolves one), fds,
// or the TLS server (mesh-server.ts). Holds no fds.
import { status } from "@grpc/grpc-js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { AdminOp, RpcError, grpcCodeOf, isReasonName } from "../proto/index.js";
import type { AdminFileStatus, AdminWorkItemSchema, FinishAdminWorkRequest } from "../proto/index.js";

type Item = MessageInitShape<typeof AdminWorkItemSchema> & { workId: bigint; deadlineUnixMs: bigint };

interface Waiting {
  readonly item: Item;
  readonly resolve: (r: AdminFileStatus) => void;
  readonly reject: (err: RpcError) => void;
  readonly timer: NodeJS.Timeout;
}

/** How long after it was last heard from (a poll or a result) the listener still counts as connected. */
const POLL_GRACE_MS = 3_000;
/** At most this many requests wait for the listener at once; more are refused (RESOURCE_EXHAUSTED). */
export const MAX_WAITING = 256;
/** At most this many items in one TakeAdminWork reply (the listener's MAX_ITEMS_PER_TAKE). */
export const MAX_BATCH = 64;

/**
 * The gRPC code the mesh client sees for the listener's error reason: the shared table's
 * (proto/reasons.ts). A name outside the set, or a failure reported with a reason that means
 * success, is a broken contract: INTERNAL.
 */
export function codeForReason(reason: string): status {
  const code = isReasonName(reason) ? grpcCodeOf(reason) : status.INTERNAL;
  return code === status.OK ? status.INTERNAL : code;
}

export class MeshRelay {
  private nextId = 1n;
  private readonly queued: Waiting[] = [];
  private readonly taken = new Map<bigint, Waiting>();
  private poll: { resolve: (items: Item[]) => void; timer: NodeJS.Timeout; max: number } | null = null;
  private lastPollMs = 0;

  /** Queues one request for the listener; settles with its result or an RpcError by `deadlineMs`. */
  submit(op: AdminOp, path: string, deadlineMs: number): Promise<AdminFileStatus> {
    // A listener busy with items it took polls again only when it has room: still connected.
    if (this.poll === null && this.taken.size === 0 && Date.now() - this.lastPollMs > POLL_GRACE_MS) {
      return Promise.reject(new RpcError(status.UNAVAILABLE, "no fanrecall listener is connected"));
    }
    if (this.queued.length + this.taken.size >= MAX_WAITING) {
      return Promise.reject(new RpcError(status.RESOURCE_EXHAUSTED, "too many admin requests in flight"));
    }
    const workId = this.nextId++;
    const item: Item = { workId, op, path, deadlineUnixMs: BigInt(deadlineMs) };
    return new Promise<AdminFileStatus>((resolve, reject) => {
      const timer = setTimeout(() => this.expire(workId), Math.max(0, deadlineMs - Date.now()));
      this.queued.push({ item, resolve, reject, timer });
      this.flush();
    });
  }

  /** The listener's long poll: up to `maxItems` (0: MAX_BATCH) queued items, or none after `waitMs`. */
  take(waitMs: number, signal: AbortSignal, maxItems = 0): Promise<Item[]> {
    this.lastPollMs = Date.now();
    this.poll?.resolve([]);
    return new Promise<Item[]>((resolve) => {
      const done = (items: Item[]) => {
        clearTimeout(timer);
        if (this.poll?.resolve === done) this.poll = null;
        this.lastPollMs = Date.now();
        resolve(items);
      };
      const timer = setTimeout(() => done([]), Math.min(Math.max(waitMs, 0), 30_000));
      this.poll = { resolve: done, timer, max: maxItems > 0 ? Math.min(maxItems, MAX_BATCH) : MAX_BATCH };
      signal.addEventListener("abort", () => done([]), { once: true });
      this.flush();
    });
  }

  /** The listener's answer to one item it took; unknown or expired ids are ignored. */
  finish(result: FinishAdminWorkRequest): void {
    // A result is news from the listener too: between its last result and its next poll it
    // is not gone, only about to ask for more.
    this.lastPollMs = Date.now();
    const w = this.taken.get(result.workId);
    if (!w) return;
    this.taken.delete(result.workId);
    clearTimeout(w.timer);
    if (result.ok && result.status) w.resolve(result.status);
    else w.reject(new RpcError(codeForReason(result.errorReason), result.message || result.errorReason || "failed"));
  }

  /** Fails everything still waiting (the server is stopping). */
  close(): void {
    for (const w of [...this.queued, ...this.taken.values()]) {
      clearTimeout(w.timer);
      w.reject(new RpcError(status.UNAVAILABLE, "the recall service is stopping"));
    }
    this.queued.length = 0;
    this.taken.clear();
    this.poll?.resolve([]);
  }

  private flush(): void {
    if (this.poll === null || this.queued.length === 0) return;
    const batch = this.queued.splice(0, this.poll.max);
    for (const w of batch) this.taken.set(w.item.workId, w);
    this.poll.resolve(batch.map((w) => w.item));
  }

  private expire(workId: bigint): void {
    const i = this.queued.findIndex((w) => w.item.workId === workId);
    const w = i >= 0 ? this.queued.splice(i, 1)[0] : this.taken.get(workId);
    if (!w) return;
    this.taken.delete(workId);
    w.reject(new RpcError(status.DEADLINE_EXCEEDED, "the listener did not finish the request in time"));
  }
}

export const ADMIN_OPS = { status: AdminOp.STATUS, restore: AdminOp.RESTORE, archive: AdminOp.ARCHIVE } as const;
