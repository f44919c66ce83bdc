// holder: keeps a duplicate of the fanotify group fd so that the group, its marks and its
// pending events outlive the listener. When the last fd of a group closes, the kernel answers
// every pending permission event with ALLOW, which would hand blocked readers a stub's
// zeros. While a listener owns the group (it put or got it on a connection that is still
// open), the holder only keeps the copy. When that connection closes without a "drop" (the
// listener died), the holder waits a short grace for a successor and then answers the group
// itself, fail-closed (fail-closed.ts): stubs EIO, other files allowed, nobody waits forever.
// A successor's "get" ends that at once.
//
// Protocol (SOCK_SEQPACKET, root peers only, one word per message):
//   "get"        -> "fd" with the group fd attached, or "none"; the sender owns the group now
//   "put" + fd   -> "ok" (the held fd is replaced; the sender owns the group)
//   "drop"       -> "ok" (the held fd is closed: a deliberate full stop of the HSM)
//   "handover"   -> "fd"/"none", then this holder lets go and retires: a new holder (a new
//                   `fanrecall start`) takes the group from one left behind
// Owns: the held group fd and the fail-closed answerer on it; its socket and connections
// through a SeqpacketServer (ipc/seqpacket-server.ts: root peers only, the path root's alone).
import { existsSync } from "node:fs";
import * as native from "../native/index.js";
import { SeqpacketServer } from "../ipc/seqpacket-server.js";
import type { SeqpacketConn } from "../ipc/seqpacket-server.js";
import { FailClosedAnswerer } from "./fail-closed.js";

/** How long a dead listener's successor has to take the group before the holder answers. */
export const OWNER_GRACE_MS = 1_000;

export interface HolderLog {
  info(msg: string): void;
  warn(msg: string): void;
}

export class Holder {
  private readonly server: SeqpacketServer;
  private held = -1;
  private owner: SeqpacketConn | null = null;
  private answerer: FailClosedAnswerer | null = null;
  private graceTimer: NodeJS.Timeout | null = null;

  private constructor(
    path: string,
    private readonly log: HolderLog,
    private readonly onRetire: () => void,
    inherited: number,
  ) {
    this.server = new SeqpacketServer({
      path,
      backlog: 8,
      dirMode: 0o700,
      socketMode: 0o600,
      peerUid: 0,
      onReadable: (conn) => this.serve(conn),
      onRefused: () => this.log.warn("holder: refused a non-root peer"),
      onDropped: (conn) => this.dropped(conn),
    });
    if (inherited >= 0) {
      this.held = inherited;
      this.log.info("holder: took the group over from the holder left behind");
      this.ownerGone();
    }
  }

  /** A holder on `path`; a holder still running there hands its group over and retires. */
  static async open(path: string, log: HolderLog, onRetire: () => void): Promise<Holder> {
    const inherited = existsSync(path) ? await takeFromPredecessor(path) : -1;
    return new Holder(path, log, onRetire, inherited);
  }

  get holding(): boolean {
    return this.held >= 0;
  }

  /** Whether the holder is answering the group itself (no listener owns it). */
  get answering(): boolean {
    return this.answerer?.running ?? false;
  }

  private serve(conn: SeqpacketConn): void {
    const msg = native.recvWithFd(conn.fd, 64);
    if (msg === null) return;
    const word = msg.eof || msg.truncated ? "" : msg.data.toString("utf8");
    const fds = msg.fds;
    try {
      if ((word === "get" || word === "handover") && fds.length === 0) {
        // Stop answering first: from here on the taker answers (it sweeps stale events).
        this.stopAnswering();
        native.sendWithFd(conn.fd, Buffer.from(this.held >= 0 ? "fd" : "none"), this.held);
        if (word === "handover") return this.retire();
        this.owner = conn;
      } else if (word === "put" && fds.length === 1) {
        this.stopAnswering();
        if (this.held >= 0) native.close(this.held);
        this.held = fds.pop()!;
        this.owner = conn;
        this.log.info("holder: holding the fanotify group");
        native.sendWithFd(conn.fd, Buffer.from("ok"), -1);
      } else if (word === "drop" && fds.length === 0) {
        this.stopAnswering();
        if (this.held >= 0) native.close(this.held);
        this.held = -1;
        this.owner = null;
        this.log.info("holder: released the fanotify group");
        native.sendWithFd(conn.fd, Buffer.from("ok"), -1);
      } else {
        if (!msg.eof) this.log.warn("holder: malformed message; closing that connection");
        this.server.drop(conn);
      }
    } catch {
      this.server.drop(conn);
    } finally {
      for (const fd of fds) native.close(fd);
    }
  }

  private dropped(conn: SeqpacketConn): void {
    if (conn === this.owner) {
      this.owner = null;
      if (this.held >= 0) this.ownerGone();
    }
  }

  /** The owning listener is gone: unless a successor takes the group in time, answer it here. */
  private ownerGone(): void {
    this.log.warn(`holder: the listener is gone; answering fail-closed in ${OWNER_GRACE_MS} ms unless one takes over`);
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = setTimeout(() => {
      this.graceTimer = null;
      if (this.owner !== null || this.held < 0) return;
      this.answerer = new FailClosedAnswerer(this.held, this.log);
      this.answerer.start();
    }, OWNER_GRACE_MS);
  }

  private stopAnswering(): void {
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = null;
    if (this.answerer?.running) {
      this.log.info(
        `holder: a listener took over (${this.answerer.failed} accesses failed, ${this.answerer.allowed} allowed meanwhile)`,
      );
    }
    this.answerer?.stop();
    this.answerer = null;
  }

  private retire(): void {
    this.log.info("holder: handed the group to a new holder; retiring");
    if (this.held >= 0) native.close(this.held);
    this.held = -1;
    // The path is the new holder's now.
    this.server.close("keep");
    this.onRetire();
  }

  close(): void {
    this.stopAnswering();
    if (this.held >= 0) native.close(this.held);
    this.held = -1;
    this.server.close();
  }
}

/** Takes the group from a holder still serving `path` (it then retires); -1 when there is none. */
async function takeFromPredecessor(path: string): Promise<number> {
  let sock: number;
  try {
    sock = native.seqpacketConnect(path);
  } catch {
    return -1;
  }
  try {
    if (native.peerCred(sock).uid !== 0) return -1;
    native.sendWithFd(sock, Buffer.from("handover"), -1);
    const reply = await native.recvOnce(sock, 64, 3_000);
    if (reply.data.toString("utf8") === "fd" && reply.fds.length === 1) return reply.fds[0];
    for (const fd of reply.fds) native.close(fd);
    return -1;
  } catch {
    return -1;
  } finally {
    native.close(sock);
  }
}
