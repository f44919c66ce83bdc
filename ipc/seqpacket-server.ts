// seqpacket-server: the one peer-checked SOCK_SEQPACKET server behind the holder's socket,
// the listener's admin socket and the recall service's end of the fd channel. It removes a
// stale socket at its path, listens there, accepts every pending connection when the
// listening socket polls readable, closes at once any peer whose uid (SO_PEERCRED) is not the
// allowed one, and watches each accepted connection with a poller of its own. What a message
// means is the caller's: it reads a connection when told it is readable, and drops it when the
// peer closed or a message is malformed (closing any fds that message brought: they are its).
//
// Owns: the listening socket and the accepted connections (fds and pollers); close() unlinks
// the path unless it belongs to a successor now. Must not own: any protocol, fds received over
// a connection, logging (the callbacks say what happened; the caller logs in its own words).
// Holds: the listening fd, and one fd per accepted connection until it is dropped.
import { chmodSync, mkdirSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import * as native from "../native/index.js";

/** An accepted connection; the same object from accept to drop (an fd number may be reused after). */
export interface SeqpacketConn {
  readonly fd: number;
  readonly peer: native.PeerCred;
}

export interface SeqpacketServerOptions {
  readonly path: string;
  readonly backlog: number;
  /** Creates the socket's directory with this mode (and sets it if it exists). Unset: left as it is. */
  readonly dirMode?: number;
  /** Sets the socket's mode. Unset: as the umask made it. */
  readonly socketMode?: number;
  /** The uid a peer must have; any other is refused. */
  readonly peerUid: number;
  /** A connection polls readable (a message, or the peer closed): the caller reads it. */
  readonly onReadable: (conn: SeqpacketConn) => void;
  /** A peer of another uid connected; its connection is closed already. */
  readonly onRefused: (peer: native.PeerCred) => void;
  readonly onAccepted?: (conn: SeqpacketConn) => void;
  /** A connection is gone (drop(), or close()); its fd is closed already. */
  readonly onDropped?: (conn: SeqpacketConn) => void;
}

interface Entry {
  readonly conn: SeqpacketConn;
  readonly poller: native.FdPoller;
}

export class SeqpacketServer {
  private readonly listenFd: number;
  private readonly poller: native.FdPoller;
  private readonly conns = new Map<number, Entry>();

  constructor(private readonly opts: SeqpacketServerOptions) {
    const { path, dirMode, socketMode } = opts;
    if (dirMode !== undefined) {
      mkdirSync(dirname(path), { recursive: true, mode: dirMode });
      chmodSync(dirname(path), dirMode);
    }
    rmSync(path, { force: true });
    this.listenFd = native.seqpacketListen(path, opts.backlog);
    try {
      if (socketMode !== undefined) chmodSync(path, socketMode);
    } catch (err: unknown) {
      native.close(this.listenFd);
      rmSync(path, { force: true });
      throw err;
    }
    this.poller = new native.FdPoller(this.listenFd, () => this.acceptAll());
    this.poller.start();
  }

  /** How many connections are open. */
  get connections(): number {
    return this.conns.size;
  }

  /** Whether `conn` is still open (not dropped, and not another connection on a reused fd). */
  isOpen(conn: SeqpacketConn): boolean {
    return this.conns.get(conn.fd)?.conn === conn;
  }

  private acceptAll(): void {
    for (;;) {
      const fd = native.seqpacketAccept(this.listenFd);
      if (fd < 0) return;
      const peer = native.peerCred(fd);
      if (peer.uid !== this.opts.peerUid) {
        native.close(fd);
        this.opts.onRefused(peer);
        continue;
      }
      const conn: SeqpacketConn = { fd, peer };
      const poller = new native.FdPoller(fd, () => this.opts.onReadable(conn));
      this.conns.set(fd, { conn, poller });
      poller.start();
      this.opts.onAccepted?.(conn);
    }
  }

  /** Closes `conn`; false when it was not open. */
  drop(conn: SeqpacketConn): boolean {
    const entry = this.conns.get(conn.fd);
    if (entry?.conn !== conn) return false;
    entry.poller.close();
    this.conns.delete(conn.fd);
    native.close(conn.fd);
    this.opts.onDropped?.(conn);
    return true;
  }

  /** Stops listening and drops every connection; the path is removed unless kept (a successor's now). */
  close(path: "unlink" | "keep" = "unlink"): void {
    this.poller.close();
    native.close(this.listenFd);
    for (const { conn } of [...this.conns.values()]) this.drop(conn);
    if (path === "unlink") rmSync(this.opts.path, { force: true });
  }
}
