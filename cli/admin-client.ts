// admin-client: the admin commands' end of the listener's root-only admin socket. It sends
// one request with an fd of the file (opened O_RDONLY with no symlink followed in any
// component, never read: the open raises no pre-content event) and closes its copy at once: the listener reopens the inode itself,
// and a release needs the file to be open nowhere else.
//
// Owns: the connected socket, and the fd it opens for one request (closed right after sending).
import * as native from "../native/index.js";
import { FAN } from "../native/index.js";

const { O_NOATIME } = FAN;

export interface AdminReply {
  readonly ok: boolean;
  readonly state?: string;
  readonly object?: { bucket: string; key: string; versionId: string };
  readonly reason?: string;
  readonly error?: string;
}

export class AdminClient {
  private readonly sock: number;
  private nextId = 1;

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

  async request(op: "archive" | "release" | "restore", path: string, timeoutMs: number): Promise<AdminReply> {
    let fd: number;
    try {
      // No symlink anywhere on the way: a directory swapped for one cannot redirect root.
      fd = native.openNoSymlinks(path, FAN.O_RDONLY | O_NOATIME);
    } catch (err: unknown) {
      if (native.isNativeError(err, "ELOOP"))
        throw new Error("a symlink is on the way to this path; root commands never follow one", { cause: err });
      throw err;
    }
    try {
      const id = this.nextId++;
      if (!native.sendWithFd(this.sock, Buffer.from(JSON.stringify({ id, op })), fd))
        throw new Error("admin socket is full");
    } finally {
      native.close(fd);
    }
    return this.receive(timeoutMs);
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
    native.close(this.sock);
  }
}
