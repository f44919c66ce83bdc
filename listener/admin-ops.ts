// admin-ops: archive, release and restore, as asked by `fanrecall` admin commands (root)
// over the admin socket. The command sends an fd of the file; the listener decides what the
// recall service may see (the same fd, over the fd channel) and keeps the stub state.
// Release and restore run their local part inside an event the command's own process raises
// on the file, so the punch and the recall happen on an FMODE_NONOTIFY event fd, serialized
// with every other access to the inode.
//
// Owns: nothing long-lived; borrows the admin fd for the duration of one operation.
import type { Logger } from "pino";
import * as native from "../native/index.js";
import type { FdStat } from "../native/index.js";
import { Reason } from "../proto/index.js";
import type { Dispatcher, Trigger } from "./dispatcher.js";
import { inodeKey } from "./dispatcher.js";
import type { FanotifySource, WatchMode } from "./fanotify-source.js";
import type { FdChannel } from "./fd-channel.js";
import type { RecallClient } from "./recall-client.js";
import { needsRecall, withState } from "./stub-state.js";
import type { StubState } from "./stub-state.js";

export class AdminError extends Error {
  override readonly name = "AdminError";
  constructor(
    readonly reason: string,
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
  readonly dispatcher: Dispatcher;
  readonly source: FanotifySource;
  readonly channel: FdChannel;
  readonly recall: RecallClient;
  readonly log: Logger;
  readonly modeOf: (dev: number) => WatchMode | undefined;
  readonly triggerTimeoutMs: number;
  readonly recallTimeoutMs: number;
}

/** A multiple of every block size in use (ext4/xfs/btrfs/tmpfs). */
const PUNCH_ALIGN = 1024 * 1024;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

function objectOf(s: StubState) {
  return { bucket: s.bucket, key: s.key, versionId: s.versionId };
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
    const s = this.opts.dispatcher.readStub(fd);
    if (s === "corrupt") throw new AdminError("stub-corrupt", "the stub state of this file is corrupt");
    return s;
  }

  async archive(fd: number): Promise<AdminResult> {
    const { st } = this.check(fd);
    const current = this.stubOf(fd);
    if (current && (needsRecall(current.state) || (current.state === "archived" && sameContentVersion(st, current)))) {
      return { state: current.state, object: objectOf(current) };
    }
    const requestId = this.opts.dispatcher.newRequestId();
    this.opts.channel.send(requestId, fd);
    const timeoutMs = Math.max(120_000, (st.size / (5 * 1024 * 1024)) * 1000);
    const reply = await this.opts.recall.archive(
      { requestId, file: { dev: BigInt(st.dev), ino: BigInt(st.ino), size: BigInt(st.size), mtimeNs: st.mtimeNs } },
      timeoutMs,
    );
    if (!reply.ok) throw new AdminError(reply.reason, reply.message);
    const r = reply.value;
    if (r.reason !== Reason.ARCHIVED || !r.object || !r.integrity) {
      throw new AdminError("store-unavailable", r.message || "archive failed");
    }
    const after = native.fstat(fd);
    if (after.size !== st.size || after.mtimeNs !== st.mtimeNs) {
      throw new AdminError("stub-changed", "the file changed while it was being archived; nothing was changed");
    }
    const stub: StubState = {
      version: 1,
      state: "archived",
      bucket: r.object.bucket,
      key: r.object.key,
      versionId: r.object.versionId,
      size: st.size,
      mtimeNs: st.mtimeNs,
      atimeNs: st.atimeNs,
      chunkSize: Number(r.integrity.chunkSize),
      contentSha256: r.integrity.contentSha256,
      manifestSha256: r.integrity.manifestSha256,
    };
    this.opts.dispatcher.writeStub(fd, stub);
    this.opts.log.info({ ino: st.ino, bytes: st.size, key: stub.key }, "archived");
    return { state: "archived", object: objectOf(stub) };
  }

  /** Verifies the archived copy, then asks the caller to trigger the release event. */
  async prepareRelease(fd: number, peerPid: number): Promise<{ wait: Promise<AdminResult> } | AdminResult> {
    await this.archive(fd);
    const { st, mode } = this.check(fd);
    const stub = this.stubOf(fd);
    if (!stub) throw new AdminError("protocol-error", "no stub state after archive");
    if (needsRecall(stub.state)) return { state: stub.state, object: objectOf(stub) };
    const requestId = this.opts.dispatcher.newRequestId();
    this.opts.channel.send(requestId, fd);
    const reply = await this.opts.recall.verify(
      {
        requestId,
        object: objectOf(stub),
        integrity: {
          contentSha256: stub.contentSha256,
          manifestSha256: stub.manifestSha256,
          chunkSize: BigInt(stub.chunkSize),
        },
      },
      Math.max(120_000, (st.size / (5 * 1024 * 1024)) * 1000),
    );
    if (!reply.ok) throw new AdminError(reply.reason, reply.message);
    if (!reply.value.equal)
      throw new AdminError("mismatch", `archived copy differs from the file: ${reply.value.message}`);
    if (!sameContentVersion(native.fstat(fd), stub))
      throw new AdminError("stub-changed", "the file changed during verification");
    this.opts.source.unignore(fd, mode);
    return { wait: this.expect(st, peerPid, (evFd, evSt) => this.releaseOn(evFd, evSt, stub)) };
  }

  private releaseOn(fd: number, st: FdStat, verified: StubState): AdminResult {
    const now = this.stubOf(fd);
    if (!now || now.key !== verified.key || now.state !== "archived" || !sameContentVersion(st, verified)) {
      throw new AdminError("stub-changed", "the file changed before it could be released; nothing was freed");
    }
    // State first: if anything below fails half way, the file is a stub that recalls correctly.
    this.opts.dispatcher.writeStub(fd, { ...withState(verified, "released"), atimeNs: st.atimeNs });
    // Punch whole blocks past EOF too: punching part of a block only zeroes it and keeps it
    // allocated, which would later look like recalled data.
    if (st.size > 0) native.punchHole(fd, 0, Math.ceil(st.size / PUNCH_ALIGN) * PUNCH_ALIGN);
    native.futimens(fd, st.atimeNs, st.mtimeNs);
    const left = native.seekData(fd, 0);
    if (left !== -1 && left < st.size) {
      throw new AdminError(
        "write-failed",
        `data remains at byte ${left} after punching; the file is a stub, reads recall it`,
      );
    }
    this.opts.log.info({ ino: st.ino, bytes: st.size, key: verified.key }, "released");
    return { state: "released", object: objectOf(verified) };
  }

  /** Restore: recall the whole file, inside the caller's trigger event. */
  prepareRestore(fd: number, peerPid: number): { wait: Promise<AdminResult> } | AdminResult {
    const { st } = this.check(fd);
    return this.prepareRestoreOf(st, this.stubOf(fd), peerPid);
  }

  /** Restore of a file already looked at (`st`, `stub`): the recall runs inside `peerPid`'s next access. */
  prepareRestoreOf(st: FdStat, stub: StubState | null, peerPid: number): { wait: Promise<AdminResult> } | AdminResult {
    if (!stub || !needsRecall(stub.state))
      return { state: stub?.state ?? "resident", ...(stub ? { object: objectOf(stub) } : {}) };
    return {
      wait: this.expect(st, peerPid, async (evFd, evSt) => {
        const cur = this.stubOf(evFd);
        if (!cur || !needsRecall(cur.state)) return { state: cur?.state ?? "resident" };
        const reason = await this.opts.dispatcher.recall(evFd, evSt, cur, null, peerPid);
        if (reason !== "recalled") throw new AdminError(reason, `restore failed: ${reason}`);
        return { state: "archived", object: objectOf(cur) };
      }),
    };
  }

  private expect(
    st: FdStat,
    pid: number,
    work: (fd: number, st: FdStat) => AdminResult | Promise<AdminResult>,
  ): Promise<AdminResult> {
    const key = inodeKey(st);
    return new Promise<AdminResult>((resolve, reject) => {
      const trigger: Trigger = {
        pid,
        run: async (fd, evSt) => {
          clearTimeout(timer);
          try {
            resolve(await work(fd, evSt));
          } catch (err: unknown) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        },
      };
      const timer = setTimeout(() => {
        this.opts.dispatcher.cancelTrigger(key, trigger);
        reject(new AdminError("timeout", "the file was not accessed by the command in time"));
      }, this.opts.triggerTimeoutMs);
      this.opts.dispatcher.expectTrigger(key, trigger);
    });
  }
}
