// holder: keeps a duplicate of the fanotify group fd so that the group, its marks and its
// pending events outlive a listener crash. When the last fd of a group closes, the kernel
// answers every pending permission event with ALLOW, which would hand blocked readers a
// stub's zeros; while the holder lives, they stay blocked until a restarted listener takes
// the group back and answers them.
//
// Protocol (SOCK_SEQPACKET, root peers only, one JSON word per message):
//   "get"        -> "fd" with the group fd attached, or "none"
//   "put" + fd   -> "ok" (the held fd is replaced)
//   "drop"       -> "ok" (the held fd is closed: a deliberate shutdown of the whole HSM)
// Owns: the listening socket, its connections and the held group fd. Nothing else: no
// policy, no events are ever read here.
import { chmodSync, mkdirSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import * as native from "../native/index.js";

export interface HolderLog {
  info(msg: string): void;
  warn(msg: string): void;
}

export class Holder {
  private readonly listenFd: number;
  private readonly poller: native.FdPoller;
  private readonly conns = new Map<number, native.FdPoller>();
  private held = -1;

  constructor(
    private readonly path: string,
    private readonly log: HolderLog,
  ) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    chmodSync(dirname(path), 0o700);
    rmSync(path, { force: true });
    this.listenFd = native.seqpacketListen(path, 8);
    chmodSync(path, 0o600);
    this.poller = new native.FdPoller(this.listenFd, () => this.acceptAll());
    this.poller.start();
  }

  get holding(): boolean {
    return this.held >= 0;
  }

  private acceptAll(): void {
    for (;;) {
      const fd = native.seqpacketAccept(this.listenFd);
      if (fd < 0) return;
      if (native.peerCred(fd).uid !== 0) {
        this.log.warn("holder: refused a non-root peer");
        native.close(fd);
        continue;
      }
      const p = new native.FdPoller(fd, () => this.serve(fd));
      this.conns.set(fd, p);
      p.start();
    }
  }

  private serve(conn: number): void {
    const msg = native.recvWithFd(conn, 64);
    if (msg === null) return;
    const word = msg.eof || msg.truncated ? "" : msg.data.toString("utf8");
    const fds = msg.fds;
    try {
      if (word === "get" && fds.length === 0) {
        native.sendWithFd(conn, Buffer.from(this.held >= 0 ? "fd" : "none"), this.held);
      } else if (word === "put" && fds.length === 1) {
        if (this.held >= 0) native.close(this.held);
        this.held = fds.pop()!;
        this.log.info("holder: holding the fanotify group");
        native.sendWithFd(conn, Buffer.from("ok"), -1);
      } else if (word === "drop" && fds.length === 0) {
        if (this.held >= 0) native.close(this.held);
        this.held = -1;
        this.log.info("holder: released the fanotify group");
        native.sendWithFd(conn, Buffer.from("ok"), -1);
      } else {
        if (!msg.eof) this.log.warn("holder: malformed message; closing that connection");
        this.drop(conn);
      }
    } catch {
      this.drop(conn);
    } finally {
      for (const fd of fds) native.close(fd);
    }
  }

  private drop(conn: number): void {
    const p = this.conns.get(conn);
    if (!p) return;
    p.close();
    this.conns.delete(conn);
    native.close(conn);
  }

  close(): void {
    this.poller.close();
    native.close(this.listenFd);
    for (const c of [...this.conns.keys()]) this.drop(c);
    if (this.held >= 0) native.close(this.held);
    this.held = -1;
    rmSync(this.path, { force: true });
  }
}
