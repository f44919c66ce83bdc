// fd-channel: the listener's end of the SOCK_SEQPACKET channel to the recall service. It
// connects to the recall service's socket, refuses a peer whose uid is not the configured
// recall uid (SO_PEERCRED), and sends one event fd per message under a requestId.
//
// It also keeps the credentials the peer had (SO_PEERCRED uid and gid, SO_PEERGROUPS): the
// mesh worker resolves paths with exactly those, so the recall service reaches no file
// through the mesh that it could not open itself.
//
// Owns: the connected socket (reconnected on demand). Must not own: the event fds (the
// caller keeps its copy and closes it after answering the kernel; SCM_RIGHTS duplicates).
import type { Logger } from "pino";
import * as native from "../native/index.js";
import { FdMessageType, encodeFdHeader } from "../proto/index.js";

export interface FdChannelOptions {
  readonly path: string;
  readonly recallUid: number;
  readonly log: Logger;
}

export class FdChannelError extends Error {
  override readonly name = "FdChannelError";
}

export class FdChannel {
  private sock = -1;
  private peer: native.UserCred | null = null;

  constructor(private readonly opts: FdChannelOptions) {}

  get connected(): boolean {
    return this.sock >= 0;
  }

  private connect(): number {
    if (this.sock >= 0) return this.sock;
    let fd: number;
    try {
      fd = native.seqpacketConnect(this.opts.path);
    } catch (err: unknown) {
      throw new FdChannelError(`cannot reach the recall service at ${this.opts.path}: ${String(err)}`);
    }
    const cred = native.peerCred(fd);
    if (cred.uid !== this.opts.recallUid) {
      native.close(fd);
      this.opts.log.error(
        { peerUid: cred.uid, expectedUid: this.opts.recallUid, reason: "protocol-error" },
        "fd channel peer refused",
      );
      throw new FdChannelError(`fd channel peer has uid ${cred.uid}, expected ${this.opts.recallUid}`);
    }
    let groups: number[];
    try {
      groups = native.peerGroups(fd);
    } catch (err: unknown) {
      native.close(fd);
      throw new FdChannelError(`cannot read the fd channel peer's groups: ${String(err)}`);
    }
    this.opts.log.info({ peerPid: cred.pid }, "fd channel connected");
    this.peer = { uid: cred.uid, gid: cred.gid, groups };
    this.sock = fd;
    return fd;
  }

  /** Sends `fd` for `requestId`; reconnects once when the old connection broke. */
  send(requestId: bigint, fd: number): void {
    const header = encodeFdHeader({ type: FdMessageType.FD_OFFER, requestId });
    for (let attempt = 0; attempt < 2; attempt++) {
      const sock = this.connect();
      try {
        if (native.sendWithFd(sock, header, fd)) return;
        throw new FdChannelError("fd channel is full");
      } catch (err: unknown) {
        this.reset();
        if (err instanceof FdChannelError || attempt === 1)
          throw err instanceof FdChannelError ? err : new FdChannelError(String(err));
      }
    }
  }

  /** The recall service's uid, gid and groups, from its end of this channel (connects if needed). */
  peerCred(): native.UserCred {
    this.connect();
    if (this.peer === null) throw new FdChannelError("the fd channel has no peer");
    return this.peer;
  }

  reset(): void {
    if (this.sock >= 0) native.close(this.sock);
    this.sock = -1;
  }
}
