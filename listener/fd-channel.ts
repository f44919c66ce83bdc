// fd-channel: the listener's end of the SOCK_SEQPACKET channel to the recall service. It
// connects to the recall service's socket, refuses a peer whose uid is not the configured
// recall uid (SO_PEERCRED), and sends one event fd per message under a requestId.
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
    this.opts.log.info({ peerPid: cred.pid }, "fd channel connected");
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

  reset(): void {
    if (this.sock >= 0) native.close(this.sock);
    this.sock = -1;
  }
}
