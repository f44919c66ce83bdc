// fd-inbox: the recall service's end of the fd channel. It listens on a SOCK_SEQPACKET
// unix socket, accepts only peers whose uid is the listener's (root), and files each
// received fd under the requestId of its header until the matching RPC takes it.
//
// Owns: every fd received but not yet taken (closed on expiry, on a protocol error, and at
// close()); the listening socket and accepted connections through a SeqpacketServer
// (ipc/seqpacket-server.ts). Must not own: what the fds are used for. A malformed message
// closes that connection (and the fds it sent) only.
import type { Logger } from "pino";
import * as native from "../native/index.js";
import { SeqpacketServer } from "../ipc/seqpacket-server.js";
import type { SeqpacketConn } from "../ipc/seqpacket-server.js";
import { FD_CHANNEL_HEADER_BYTES, decodeFdHeader } from "../proto/index.js";

interface Parked {
  readonly fd: number;
  /** The connection it came on: when that listener goes away, its unclaimed fds go too. */
  readonly conn: SeqpacketConn;
  readonly expires: ReturnType<typeof setTimeout>;
}

interface Waiter {
  readonly resolve: (fd: number | null) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

export interface FdInboxOptions {
  readonly path: string;
  /** uid the peer must have (the listener runs as root: 0). */
  readonly peerUid: number;
  /** How long an unclaimed fd is kept. */
  readonly parkMs: number;
  readonly log: Logger;
}

export class FdInbox {
  private readonly server: SeqpacketServer;
  private readonly parked = new Map<bigint, Parked>();
  private readonly waiters = new Map<bigint, Waiter>();
  private onConnectionChange: (connected: number) => void = () => {};

  constructor(private readonly opts: FdInboxOptions) {
    this.server = new SeqpacketServer({
      path: opts.path,
      backlog: 16,
      peerUid: opts.peerUid,
      onReadable: (conn) => this.drain(conn),
      onRefused: (peer) =>
        opts.log.warn({ peerUid: peer.uid, peerPid: peer.pid, reason: "protocol-error" }, "fd channel peer refused"),
      onAccepted: (conn) => {
        opts.log.info({ peerPid: conn.peer.pid }, "fd channel connected");
        this.onConnectionChange(this.server.connections);
      },
      onDropped: (conn) => this.release(conn),
    });
  }

  /** Called with the number of accepted listener connections whenever it changes. */
  watchConnections(cb: (connected: number) => void): void {
    this.onConnectionChange = cb;
  }

  get connections(): number {
    return this.server.connections;
  }

  private drain(conn: SeqpacketConn): void {
    for (let i = 0; i < 64; i++) {
      let msg: native.RecvResult | null;
      try {
        msg = native.recvWithFd(conn.fd, FD_CHANNEL_HEADER_BYTES + 1);
      } catch (err: unknown) {
        this.drop(conn, `recv failed: ${String(err)}`);
        return;
      }
      if (msg === null) return;
      if (msg.eof) {
        this.drop(conn, "peer closed");
        return;
      }
      const header = msg.truncated ? "truncated message" : decodeFdHeader(msg.data);
      if (typeof header === "string" || msg.fds.length !== 1) {
        for (const fd of msg.fds) native.close(fd);
        this.drop(conn, typeof header === "string" ? header : `expected 1 fd, got ${msg.fds.length}`);
        return;
      }
      this.park(header.requestId, msg.fds[0], conn);
    }
  }

  private park(requestId: bigint, fd: number, conn: SeqpacketConn): void {
    const waiter = this.waiters.get(requestId);
    if (waiter) {
      this.waiters.delete(requestId);
      clearTimeout(waiter.timer);
      waiter.resolve(fd);
      return;
    }
    const old = this.parked.get(requestId);
    if (old) {
      clearTimeout(old.expires);
      native.close(old.fd);
    }
    const expires = setTimeout(() => {
      if (this.parked.get(requestId)?.fd === fd) {
        this.parked.delete(requestId);
        native.close(fd);
      }
    }, this.opts.parkMs);
    expires.unref();
    this.parked.set(requestId, { fd, conn, expires });
  }

  private drop(conn: SeqpacketConn, why: string): void {
    if (!this.server.drop(conn)) return;
    const level = why === "peer closed" ? "info" : "warn";
    this.opts.log[level]({ reason: why === "peer closed" ? "shutdown" : "protocol-error", why }, "fd channel closed");
  }

  /** A connection is gone: the fds it parked and nobody took go with it. */
  private release(conn: SeqpacketConn): void {
    for (const [id, p] of this.parked) {
      if (p.conn !== conn) continue;
      clearTimeout(p.expires);
      native.close(p.fd);
      this.parked.delete(id);
    }
    this.onConnectionChange(this.server.connections);
  }

  /** Takes the fd for a request, waiting up to waitMs for it to arrive; null when it never does. */
  take(requestId: bigint, waitMs: number): Promise<number | null> {
    const p = this.parked.get(requestId);
    if (p) {
      this.parked.delete(requestId);
      clearTimeout(p.expires);
      return Promise.resolve(p.fd);
    }
    if (this.waiters.has(requestId)) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(requestId);
        resolve(null);
      }, waitMs);
      this.waiters.set(requestId, { resolve, timer });
    });
  }

  close(): void {
    const connected = this.server.connections;
    this.server.close();
    if (connected > 0) this.opts.log.info({ reason: "shutdown", connected }, "fd channel closed");
    for (const [, p] of this.parked) {
      clearTimeout(p.expires);
      native.close(p.fd);
    }
    this.parked.clear();
    for (const [, w] of this.waiters) {
      clearTimeout(w.timer);
      w.resolve(null);
    }
    this.waiters.clear();
  }
}
