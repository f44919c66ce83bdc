// admin-client: the admin commands' end of the listener's root-only admin socket. It asks the
// listener for its watched directories (`roots`, no fd), then sends one request per file with
// an O_PATH fd of it, resolved beneath a watched directory with no symlink followed in any
// component (watch-roots): an O_PATH fd reads nothing, so sending it raises no pre-content
// event and counts as no open for the release's lease. The listener reopens the inode itself.
//
// Owns: the connected socket, and (for request() by path) the watched directories' fds and the
// O_PATH fd of one request, closed right after sending. requestFd() only borrows its fd.
import * as native from "../native/index.js";
import { WatchRoots, isRootInfoList, resolveError } from "./watch-roots.js";
import type { WatchRootInfo } from "./watch-roots.js";

export interface AdminReply {
  readonly ok: boolean;
  readonly state?: string;
  readonly object?: { bucket: string; key: string; versionId: string };
  readonly reason?: string;
  readonly error?: string;
  readonly roots?: unknown;
}

export type AdminOp = "archive" | "release" | "restore";

export class AdminClient {
  private readonly sock: number;
  private nextId = 1;
  private watchRoots: WatchRoots | null = null;

  constructor(socketPath: string) {
    try {
      this.sock = native.seqpacketConnect(socketPath);
    } catch (err: unknown) {
      throw new Error(
        `cannot reach the fanrecall listener at ${socketPath} (is 'fanrecall start' or 'fanrecall listener' running?): ${String(err)}`,
        { cause: err },
      );
    }
    if (native.peerCred(this.sock).uid !== 0) {
      native.close(this.sock);
      throw new Error(`${socketPath} is not served by root; refusing to send file descriptors to it`);
    }
  }

  /** The listener's watched directories, each with the (dev, ino) it watches. */
  async roots(timeoutMs: number): Promise<WatchRootInfo[]> {
    this.send({ id: this.nextId++, op: "roots" }, -1);
    const reply = await this.receive(timeoutMs);
    if (!reply.ok || !isRootInfoList(reply.roots))
      throw new Error(`the listener did not name its watched directories: ${reply.error ?? "malformed reply"}`);
    return reply.roots;
  }

  /** One request for the file `fd` (O_PATH is enough; the caller keeps and closes its fd). */
  async requestFd(op: AdminOp, fd: number, timeoutMs: number, path?: string): Promise<AdminReply> {
    this.send({ id: this.nextId++, op, path }, fd);
    return this.receive(timeoutMs);
  }

  /**
   * Asks the listener to make the new, empty file `fd` a released stub with `state` (an
   * encoded stub state), then give it `owner` and mode; the listener checks file and state.
   */
  async requestStub(
    fd: number,
    state: string,
    owner: { uid: number; gid: number; mode: number },
    timeoutMs = 30_000,
  ): Promise<AdminReply> {
    this.send({ id: this.nextId++, op: "stub", state, ...owner }, fd);
    return this.receive(timeoutMs);
  }

  /**
   * One request for the file at `path`, resolved beneath a watched directory with no symlink
   * followed; a path that resolution refuses gets a failed reply with its reason, nothing sent.
   */
  async request(op: AdminOp, path: string, timeoutMs: number): Promise<AdminReply> {
    this.watchRoots ??= WatchRoots.open(await this.roots(timeoutMs));
    let fd: number;
    try {
      fd = this.watchRoots.open(path);
    } catch (err: unknown) {
      const e = resolveError(err);
      return { ok: false, reason: e.reason, error: e.message };
    }
    try {
      if ((native.fstat(fd).mode & 0o170000) !== 0o100000)
        return { ok: false, reason: "invalid-path", error: "not a regular file" };
      this.send({ id: this.nextId++, op }, fd);
    } finally {
      native.close(fd);
    }
    return this.receive(timeoutMs);
  }

  private send(body: { id: number; op: AdminOp | "roots" | "stub"; [field: string]: unknown }, fd: number): void {
    if (!native.sendWithFd(this.sock, Buffer.from(JSON.stringify(body)), fd)) throw new Error("admin socket is full");
  }

  private receive(timeoutMs: number): Promise<AdminReply> {
    return new Promise((resolve, reject) => {
      const poller = new native.FdPoller(this.sock, () => {
        const msg = native.recvWithFd(this.sock, 65536);
        if (msg === null) return;
        done();
        for (const fd of msg.fds) native.close(fd);
        if (msg.eof) return reject(new Error("the listener closed the admin connection"));
        try {
          resolve(JSON.parse(msg.data.toString("utf8")) as AdminReply);
        } catch {
          reject(new Error("malformed reply from the listener"));
        }
      });
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no answer from the listener within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        poller.close();
      };
      poller.start();
    });
  }

  close(): void {
    this.watchRoots?.close();
    native.close(this.sock);
  }
}
