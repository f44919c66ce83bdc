// admin-ops: archive, release and restore, as asked by `fanrecall` admin commands (root)
// over the admin socket, and by the mesh worker. The caller passes an fd of the file that the
// listener opened itself through its private view (read-only, no events); the listener
// decides what the recall service may see (that fd, over the fd channel) and keeps the stub
// state. Release and restore run inside the inode's queue, after every access queued before
// them. Release frees blocks only under a write lease, which the kernel grants only while no
// one else has the file open and which holds every new open until the release is done: so no
// reader can be between "allowed" and "read" while the blocks go, and no writer's bytes can
// be punched away. Nothing the recall service reports is believed: an archive result is
// checked (the request's id, the file's size, well-formed digests and object names) before it
// becomes stub state, and a release frees blocks only after the listener has hashed the file
// itself and found the archive's digests and the manifest read back from the store equal to it.
//
// Owns: nothing long-lived; the writable fd of one release or restore (closed before it returns).
import type { Logger } from "pino";
import * as native from "../native/index.js";
import type { FdStat } from "../native/index.js";
import { fchmodSync, fchownSync } from "node:fs";
import { Reason, reasonFromProto } from "../proto/index.js";
import { encodeFileRecord } from "../proto/namespace-format.js";
import type { ReasonName } from "../proto/index.js";
import type { ContentCheck } from "./content-check.js";
import type { FilePlace } from "./file-places.js";
import { recordOf } from "./file-records.js";
import type { Dispatcher } from "./dispatcher.js";
import type { FanotifySource, WatchMode } from "./fanotify-source.js";
import { inodeKey } from "./inode-queue.js";
import type { FdRequests, RecallClient } from "./recall-client.js";
import type { RecallRunner } from "./recall-runner.js";
import { StubStateError, decodeStubState, needsRecall, withState } from "./stub-state.js";
import type { StubState } from "./stub-state.js";
import type { StubRead, StubStore } from "./stub-store.js";
import type { WritableViews } from "./writable-view.js";

/** An admin request's failure, with a reason of the closed set (proto/reasons.ts). */
export class AdminError extends Error {
  override readonly name = "AdminError";
  constructor(
    readonly reason: ReasonName,
    message: string,
  ) {
    super(message);
  }
}

export interface AdminResult {
  readonly state: string;
  readonly object?: { bucket: string; key: string; versionId: string };
}

export interface AdminOpsOptions {
  /** The inode queue: release and restore run inside it. */
  readonly dispatcher: Pick<Dispatcher, "exclusive">;
  readonly runner: Pick<RecallRunner, "withWritable" | "recall">;
  readonly stubs: Pick<StubStore, "read" | "write">;
  /** The listener's check of recalled bytes: it vouches for a release too. */
  readonly content: Pick<ContentCheck, "vouch" | "forget">;
  readonly requests: Pick<FdRequests, "call">;
  readonly source: Pick<FanotifySource, "unignore">;
  readonly recall: Pick<RecallClient, "archive" | "verify" | "writeRecord">;
  readonly log: Logger;
  readonly views: Pick<WritableViews, "reopen">;
  readonly modeOf: (dev: number) => WatchMode | undefined;
}

/** A stub state an admin operation can act on: a corrupt one refuses the operation (stub-corrupt). */
export function stubOrRefuse(s: StubRead): StubState | null {
  if (s === "corrupt") throw new AdminError("stub-corrupt", "the stub state of this file is corrupt");
  return s;
}

/** An fd the caller owns that an operation may close early (release must, to get its lease). */
export class OwnedFd {
  private open = true;
  constructor(readonly fd: number) {}
  close(): void {
    if (!this.open) return;
    this.open = false;
    native.close(this.fd);
  }
}

const LEASE_ATTEMPTS = 20;
const LEASE_RETRY_MS = 50;
/** A multiple of every block size in use (ext4/xfs/btrfs/tmpfs). */
const PUNCH_ALIGN = 1024 * 1024;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

function objectOf(s: StubState) {
  return { bucket: s.bucket, key: s.key, versionId: s.versionId, manifestVersionId: s.manifestVersionId };
}

/** An archive or verify reads the whole file: at least two minutes, and 5 MiB/s. */
function transferTimeoutMs(st: FdStat): number {
  return Math.max(120_000, (st.size / (5 * 1024 * 1024)) * 1000);
}

function sameContentVersion(st: FdStat, s: StubState): boolean {
  return st.size === s.size && st.mtimeNs === s.mtimeNs;
}

export class AdminOps {
  constructor(private readonly opts: AdminOpsOptions) {}

  private check(fd: number): { st: FdStat; mode: WatchMode } {
    const st = native.fstat(fd);
    if ((st.mode & S_IFMT) !== S_IFREG) throw new AdminError("protocol-error", "not a regular file");
    const mode = this.opts.modeOf(st.dev);
    if (!mode) throw new AdminError("protocol-error", "not on a watched filesystem");
    return { st, mode };
  }

  private stubOf(fd: number): StubState | null {
    return stubOrRefuse(this.opts.stubs.read(fd));
  }

  /**
   * Archives the file; with its place, the object goes under its namespace with a record of
   * its path and attributes beside it (what a rebuild needs).
   */
  async archive(fd: number, place: FilePlace | null = null): Promise<AdminResult> {
    const { st } = this.check(fd);
    const current = this.stubOf(fd);
    if (current && (needsRecall(current.state) || (current.state === "archived" && sameContentVersion(st, current)))) {
      return { state: current.state, object: objectOf(current) };
    }
    const file = { dev: BigInt(st.dev), ino: BigInt(st.ino), size: BigInt(st.size), mtimeNs: st.mtimeNs };
    const where = place && {
      namespace: place.namespace,
      path: place.path,
      attributes: { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777, atimeNs: st.atimeNs },
    };
    const reply = await this.opts.requests.call("archive", fd, (requestId) =>
      this.opts.recall.archive({ requestId, file, ...where }, transferTimeoutMs(st)),
    );
    if (!reply.ok) throw new AdminError(reply.reason, reply.message);
    const r = reply.value;
    if (r.reason !== Reason.ARCHIVED || !r.object || !r.integrity) {
      const said = reasonFromProto(r.reason);
      throw new AdminError(said === "archived" ? "protocol-error" : said, r.message || "archive failed");
    }
    const after = native.fstat(fd);
    if (after.size !== st.size || after.mtimeNs !== st.mtimeNs) {
      throw new AdminError("stub-changed", "the file changed while it was being archived; nothing was changed");
    }
    if (r.size !== BigInt(st.size)) throw new AdminError("protocol-error", "archive reply names another size");
    const stub: StubState = {
      version: 1,
      state: "archived",
      bucket: r.object.bucket,
      key: r.object.key,
      versionId: r.object.versionId,
      manifestVersionId: r.object.manifestVersionId,
      size: st.size,
      mtimeNs: st.mtimeNs,
      atimeNs: st.atimeNs,
      chunkSize: Number(r.integrity.chunkSize),
      contentSha256: r.integrity.contentSha256,
      manifestSha256: r.integrity.manifestSha256,
    };
    try {
      // Encoding refuses what decoding would (chunk size, digests, object names) before the
      // xattr is written: a bad reply is never written.
      this.opts.stubs.write(fd, stub);
    } catch (err: unknown) {
      if (!(err instanceof StubStateError)) throw err;
      throw new AdminError("protocol-error", `archive reply refused: ${err.message}`);
    }
    this.opts.log.info({ ino: st.ino, bytes: st.size, key: stub.key }, "archived");
    return { state: "archived", object: objectOf(stub) };
  }

  /**
   * Archives if needed; has the recall service read the copy back and compare; hashes the file
   * here and checks it against the archive's digests and the manifest read back; then frees
   * the blocks under a write lease, if the file has not changed since it was hashed.
   */
  async release(file: OwnedFd, place: FilePlace | null = null): Promise<AdminResult> {
    await this.archive(file.fd, place);
    const { st, mode } = this.check(file.fd);
    const stub = this.stubOf(file.fd);
    if (!stub) throw new AdminError("protocol-error", "no stub state after archive");
    if (needsRecall(stub.state)) return { state: stub.state, object: objectOf(stub) };
    const integrity = {
      contentSha256: stub.contentSha256,
      manifestSha256: stub.manifestSha256,
      chunkSize: BigInt(stub.chunkSize),
    };
    const reply = await this.opts.requests.call("verify", file.fd, (requestId) =>
      this.opts.recall.verify({ requestId, object: objectOf(stub), integrity }, transferTimeoutMs(st)),
    );
    if (!reply.ok) throw new AdminError(reply.reason, reply.message);
    if (!reply.value.equal) {
      // A file written since it was archived differs from its copy: that is a change, not a bad copy.
      if (!sameContentVersion(native.fstat(file.fd), stub))
        throw new AdminError("stub-changed", "the file changed since it was archived; nothing was freed");
      throw new AdminError("mismatch", `archived copy differs from the file: ${reply.value.message}`);
    }
    // The service's "equal" is not enough: the listener hashes the file itself. A write after
    // this point changes ctime, which is checked again under the lease.
    const hashed = native.fstat(file.fd);
    const vouched = await this.opts.content.vouch(file.fd, stub, reply.value.manifest);
    if (!vouched.ok) {
      if (!sameContentVersion(native.fstat(file.fd), stub))
        throw new AdminError("stub-changed", "the file changed since it was archived; nothing was freed");
      throw new AdminError("mismatch", `the archive does not match the file as hashed here: ${vouched.why}`);
    }
    const rw = this.opts.views.reopen(file.fd, st, "write");
    // The lease needs this to be the only open file of the inode.
    file.close();
    let result: AdminResult;
    try {
      result = await this.opts.dispatcher.exclusive(inodeKey(st), () =>
        this.releaseWhenFree(rw, stub, hashed.ctimeNs, mode),
      );
    } finally {
      native.close(rw);
    }
    if (place) await this.record(place, st, stub);
    return result;
  }

  /**
   * Appends the released file's record (its path now) to its namespace. The release stands
   * whether or not the store takes it: the next reconcile's snapshot records the file anyway.
   */
  private async record(place: FilePlace, st: FdStat, s: StubState): Promise<void> {
    const record = encodeFileRecord(recordOf(place.path, st, s, Date.now()));
    const reply = await this.opts.recall.writeRecord({ namespace: place.namespace, record });
    const stored = reply.ok && reply.value.reason === Reason.STORED;
    if (!stored) {
      const reason = reply.ok ? reasonFromProto(reply.value.reason) : reply.reason;
      this.opts.log.warn(
        { reason, key: s.key },
        "released, but its record was not stored (the next reconcile records it)",
      );
    }
  }

  /**
   * Makes a new, empty file a released stub (rebuild, undelete): `file` must be a regular file
   * of root's that no one else can open (mode 0600 or less, one link), hold no data and no stub
   * state, and have the size the state names. Under a write lease (no other open of it), the
   * state is written first, the ignore mark dropped, then the recorded times, owner and mode
   * (without setuid and setgid) are set.
   */
  async makeStub(file: OwnedFd, req: { state: string; uid: number; gid: number; mode: number }): Promise<AdminResult> {
    const { st, mode } = this.check(file.fd);
    let s: StubState;
    try {
      s = decodeStubState(Buffer.from(req.state, "utf8"));
    } catch (err: unknown) {
      throw new AdminError("protocol-error", `invalid stub state: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (s.state !== "released") throw new AdminError("protocol-error", "a new stub must be released");
    if (st.uid !== 0 || (st.mode & 0o077) !== 0 || st.nlink !== 1 || st.size !== s.size) {
      throw new AdminError("protocol-error", "not a new file of root's, unshared, of the stub's size");
    }
    if (this.opts.stubs.read(file.fd) !== null) throw new AdminError("exists", "the file already has a stub state");
    const data = native.seekData(file.fd, 0);
    if (data !== -1 && data < st.size) throw new AdminError("exists", "the file holds data; it is never made a stub");
    const rw = this.opts.views.reopen(file.fd, st, "write");
    file.close();
    try {
      native.setLease(rw, "write");
    } catch {
      native.close(rw);
      throw new AdminError("busy", "the new file is open elsewhere; it is not made a stub");
    }
    try {
      this.opts.stubs.write(rw, s);
      this.opts.source.unignore(rw, mode);
      native.futimens(rw, s.atimeNs, s.mtimeNs);
      fchownSync(rw, req.uid, req.gid);
      fchmodSync(rw, req.mode & 0o1777);
      this.opts.log.info({ ino: st.ino, bytes: s.size, key: s.key }, "stub made");
      return { state: "released", object: objectOf(s) };
    } finally {
      native.setLease(rw, "none");
      native.close(rw);
    }
  }

  /**
   * Tries the lease for about a second: an access that finished just before this turn in the
   * queue may still be closing its fd. While it waits the inode queue is held, so no new
   * recall of the file starts; a file that stays open fails with busy.
   */
  private async releaseWhenFree(
    rw: number,
    verified: StubState,
    ctimeNs: bigint,
    mode: WatchMode,
  ): Promise<AdminResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return this.releaseLeased(rw, verified, ctimeNs, mode);
      } catch (err: unknown) {
        if (!(err instanceof AdminError && err.reason === "busy") || attempt >= LEASE_ATTEMPTS) throw err;
      }
      await new Promise((r) => setTimeout(r, LEASE_RETRY_MS));
    }
  }

  /** Synchronous from lease to unlease: no event is read, nothing else runs meanwhile. */
  private releaseLeased(rw: number, verified: StubState, ctimeNs: bigint, mode: WatchMode): AdminResult {
    try {
      native.setLease(rw, "write");
    } catch (err: unknown) {
      if (native.isNativeError(err, "EAGAIN") || native.isNativeError(err, "EBUSY"))
        throw new AdminError("busy", "the file is open (or mapped, or running); nothing was freed: try again later");
      throw err;
    }
    try {
      const st = native.fstat(rw);
      const now = this.stubOf(rw);
      // ctime: any write since the file was hashed (mtime alone can be set back by its owner).
      if (
        !now ||
        now.key !== verified.key ||
        now.state !== "archived" ||
        !sameContentVersion(st, verified) ||
        st.ctimeNs !== ctimeNs
      ) {
        throw new AdminError("stub-changed", "the file changed before it could be released; nothing was freed");
      }
      // State first: if anything below fails half way, the file is a stub that recalls correctly.
      this.opts.stubs.write(rw, { ...withState(verified, "released"), atimeNs: st.atimeNs });
      // Its blocks go: whatever was checked of it is to be checked again when recalled.
      this.opts.content.forget(inodeKey(st));
      // A stub must raise an event on every access: drop any ignore mark the inode has.
      this.opts.source.unignore(rw, mode);
      // Punch whole blocks past EOF too: punching part of a block only zeroes it and keeps it
      // allocated, which would later look like recalled data.
      if (st.size > 0) native.punchHole(rw, 0, Math.ceil(st.size / PUNCH_ALIGN) * PUNCH_ALIGN);
      native.futimens(rw, st.atimeNs, st.mtimeNs);
      const left = native.seekData(rw, 0);
      if (left !== -1 && left < st.size) {
        throw new AdminError(
          "write-failed",
          `data remains at byte ${left} after punching; the file is a stub, reads recall it`,
        );
      }
      this.opts.log.info({ ino: st.ino, bytes: st.size, key: verified.key }, "released");
      return { state: "released", object: objectOf(verified) };
    } finally {
      native.setLease(rw, "none");
    }
  }

  /** Restore: recall the whole file now, inside the inode's queue. */
  async restore(fd: number): Promise<AdminResult> {
    const { st } = this.check(fd);
    const stub = this.stubOf(fd);
    if (!stub || !needsRecall(stub.state))
      return { state: stub?.state ?? "resident", ...(stub ? { object: objectOf(stub) } : {}) };
    return this.opts.dispatcher.exclusive(inodeKey(st), async () => {
      const cur = this.stubOf(fd);
      if (!cur || !needsRecall(cur.state)) return { state: cur?.state ?? "resident" };
      const now = native.fstat(fd);
      const reason = await this.opts.runner.withWritable(fd, now, (rw) =>
        this.opts.runner.recall(rw, now, cur, null, null),
      );
      if (reason !== "recalled") throw new AdminError(reason, `restore failed: ${reason}`);
      return { state: "archived", object: objectOf(cur) };
    });
  }
}
