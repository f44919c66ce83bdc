// test/helpers/fd-relay.ts: the fd channel of the hostile recall service (hostile-recall.ts):
// the listener's end of RUN_DIR/recall/fd.sock on one side, a connection to the real recall
// service's fd channel on the other. It parks each fd the listener sends under its requestId
// until an RPC takes it, can stop accepting and receiving (dropping the accepted connections),
// relays an fd to the real service, and can push FD_OFFERs for ids never asked back at the
// listener.
//
// Owns: the listening socket, the accepted connections, every parked fd (closed after 30 s
// when no RPC takes it) and the connection to the real service. Must not own: what the fds
// are used for.
import * as native from "../../native/index.js";
import { FD_CHANNEL_HEADER_BYTES, FdMessageType, decodeFdHeader, encodeFdHeader } from "../../proto/index.js";

const PARK_MS = 30_000;

/** The fd channel, listener side: parks each received fd under its requestId. */
export class FdRelay {
  private readonly listenFd: number;
  private listenPoller: native.FdPoller | null = null;
  private readonly conns = new Map<number, native.FdPoller>();
  private readonly parked = new Map<bigint, { fd: number; timer: ReturnType<typeof setTimeout> }>();
  private readonly waiters = new Map<bigint, (fd: number | null) => void>();
  private forward = -1;

  constructor(
    path: string,
    private readonly forwardPath: string,
    /** Told the uid of each peer accepted. */
    private readonly onAccept: (peerUid: number) => void,
  ) {
    // A backlog of 1: a proxy that stops accepting fills it after a connection or two.
    this.listenFd = native.seqpacketListen(path, 1);
    this.accepting(true);
  }

  accepting(on: boolean): void {
    if (on && this.listenPoller === null) {
      this.listenPoller = new native.FdPoller(this.listenFd, () => this.acceptAll());
      this.listenPoller.start();
    } else if (!on && this.listenPoller !== null) {
      this.listenPoller.close();
      this.listenPoller = null;
      for (const conn of [...this.conns.keys()]) this.drop(conn);
    }
  }

  private acceptAll(): void {
    for (let fd = native.seqpacketAccept(this.listenFd); fd >= 0; fd = native.seqpacketAccept(this.listenFd)) {
      const conn = fd;
      const poller = new native.FdPoller(conn, () => this.drain(conn));
      this.conns.set(conn, poller);
      poller.start();
      this.onAccept(native.peerCred(conn).uid);
    }
  }

  private drain(conn: number): void {
    for (;;) {
      const msg = native.recvWithFd(conn, FD_CHANNEL_HEADER_BYTES + 1);
      if (msg === null) return;
      if (msg.eof) return this.drop(conn);
      const header = msg.truncated ? "truncated" : decodeFdHeader(msg.data);
      if (typeof header === "string" || msg.fds.length !== 1) {
        for (const fd of msg.fds) native.close(fd);
        return this.drop(conn);
      }
      const [fd] = msg.fds;
      const waiter = this.waiters.get(header.requestId);
      this.waiters.delete(header.requestId);
      if (waiter) waiter(fd);
      else {
        const id = header.requestId;
        const timer = setTimeout(() => {
          if (this.parked.get(id)?.fd !== fd) return;
          this.parked.delete(id);
          native.close(fd);
        }, PARK_MS);
        const old = this.parked.get(id);
        if (old) {
          clearTimeout(old.timer);
          native.close(old.fd);
        }
        this.parked.set(id, { fd, timer });
      }
    }
  }

  private drop(conn: number): void {
    this.conns.get(conn)?.close();
    this.conns.delete(conn);
    native.close(conn);
  }

  take(requestId: bigint, waitMs: number): Promise<number | null> {
    const p = this.parked.get(requestId);
    if (p) {
      this.parked.delete(requestId);
      clearTimeout(p.timer);
      return Promise.resolve(p.fd);
    }
    if (waitMs <= 0) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(requestId);
        resolve(null);
      }, waitMs);
      this.waiters.set(requestId, (fd) => {
        clearTimeout(timer);
        resolve(fd);
      });
    });
  }

  /** Sends `fd` to the real recall service under `requestId` (reconnecting once). */
  relay(requestId: bigint, fd: number): void {
    const header = encodeFdHeader({ type: FdMessageType.FD_OFFER, requestId });
    for (let attempt = 0; ; attempt++) {
      if (this.forward < 0) this.forward = native.seqpacketConnect(this.forwardPath);
      try {
        if (native.sendWithFd(this.forward, header, fd)) return;
        throw new Error("the real fd channel is full");
      } catch (err: unknown) {
        native.close(this.forward);
        this.forward = -1;
        if (attempt > 0) throw err;
      }
    }
  }

  /** Pushes FD_OFFER messages for ids the listener never used back at it, until its queue is full. */
  pushUnasked(): number {
    let sent = 0;
    const devNull = native.openPath("/dev/null", 0);
    try {
      for (const conn of this.conns.keys()) {
        for (let i = 0; i < 4096; i++) {
          const header = encodeFdHeader({ type: FdMessageType.FD_OFFER, requestId: BigInt(0x7777_0000 + i) });
          if (!native.sendWithFd(conn, i % 2 === 0 ? header : Buffer.from("garbage, not a header"), devNull)) break;
          sent++;
        }
      }
    } finally {
      native.close(devNull);
    }
    return sent;
  }
}
