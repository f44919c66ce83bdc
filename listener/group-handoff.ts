// group-handoff: the listener's side of the group-fd holder. At start it asks the holder for
// a group a dead predecessor left behind; when it creates a new group it deposits a copy.
// A taken-over group may hold events the predecessor read but never answered: only their fd
// numbers identify them, so `answerStale` answers every number a predecessor can have used
// with a deny (EIO: the failure table's `shutdown`) before any new event is read (new fds
// could reuse those numbers).
//
// The connection stays open while the listener runs: it is how the holder knows a listener
// owns the group. If the holder dies, the listener deposits a copy again as soon as a holder
// answers (checked every second), so the group is never left with a single owner for long.
//
// Owns: the connection to the holder and its poller. The group fd it returns belongs to the caller.
import type { Logger } from "pino";
import * as native from "../native/index.js";

const REPLY_TIMEOUT_MS = 3_000;
/** Predecessors never hold more fds than this (at most 32768 held event fds, one writable fd per recall, their sockets). */
export const STALE_FD_SWEEP = 65_536;

const REDEPOSIT_MS = 1_000;

export class GroupHandoff {
  private sock = -1;
  private poller: native.FdPoller | null = null;
  private retry: NodeJS.Timeout | null = null;
  private kept = -1;

  constructor(
    private readonly path: string,
    private readonly log: Logger,
  ) {}

  private connect(): boolean {
    if (this.sock >= 0) return true;
    try {
      this.sock = native.seqpacketConnect(this.path);
    } catch (err: unknown) {
      if (this.kept >= 0) return false; // retrying every second: said once already
      this.log.warn(
        { holder: this.path, err: String(err) },
        "no group holder: a listener crash would let held readers through",
      );
      return false;
    }
    if (native.peerCred(this.sock).uid !== 0) {
      native.close(this.sock);
      this.sock = -1;
      throw new Error(`${this.path} is not served by root`);
    }
    return true;
  }

  private async request(word: string, fd: number): Promise<native.RecvResult> {
    native.sendWithFd(this.sock, Buffer.from(word), fd);
    return native.recvOnce(this.sock, 64, REPLY_TIMEOUT_MS);
  }

  /** The group a predecessor left with the holder, or null. */
  async take(): Promise<number | null> {
    if (!this.connect()) return null;
    const reply = await this.request("get", -1);
    const word = reply.data.toString("utf8");
    if (word === "fd" && reply.fds.length === 1) return reply.fds[0];
    for (const fd of reply.fds) native.close(fd);
    return null;
  }

  /** Deposits a copy of the group fd; false when no holder runs. */
  async deposit(groupFd: number): Promise<boolean> {
    if (!this.connect()) return false;
    const reply = await this.request("put", groupFd);
    return reply.data.toString("utf8") === "ok";
  }

  /**
   * Watches the holder connection for as long as the listener runs: if the holder goes away,
   * a copy of `groupFd` is deposited again with the next holder that answers.
   */
  keep(groupFd: number): void {
    this.kept = groupFd;
    if (this.sock < 0) return this.scheduleRedeposit();
    this.poller = new native.FdPoller(this.sock, () => {
      const msg = native.recvWithFd(this.sock, 64);
      if (msg === null) return;
      for (const fd of msg.fds) native.close(fd);
      if (!msg.eof) return;
      this.log.warn({ holder: this.path }, "the group holder went away; depositing again when one answers");
      this.unwatch();
      this.close();
      this.scheduleRedeposit();
    });
    this.poller.start();
  }

  private scheduleRedeposit(): void {
    if (this.kept < 0 || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      this.deposit(this.kept).then(
        (ok) => (ok ? this.keep(this.kept) : this.scheduleRedeposit()),
        () => {
          this.close();
          this.scheduleRedeposit();
        },
      );
    }, REDEPOSIT_MS);
  }

  private unwatch(): void {
    this.poller?.close();
    this.poller = null;
  }

  /** Asks the holder to let go of the group (a deliberate full stop). */
  async drop(): Promise<void> {
    this.kept = -1;
    this.unwatch();
    if (this.sock < 0) return;
    try {
      await this.request("drop", -1);
    } catch (err: unknown) {
      this.log.warn({ err: String(err) }, "holder did not confirm the drop");
    }
  }

  close(): void {
    this.unwatch();
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    if (this.sock >= 0) native.close(this.sock);
    this.sock = -1;
  }
}

/** Answers, with a deny of `errno`, every event a dead predecessor had read but not answered. */
export function answerStale(groupFd: number, errno: number): number {
  return native.fanotifyRespondRange(groupFd, 0, STALE_FD_SWEEP, native.denyErrno(errno));
}
