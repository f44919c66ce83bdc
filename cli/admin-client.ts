// admin-client: the admin commands' end of the listener's root-only admin socket. It sends
// one request with the file's fd, and when the listener asks for it, performs the trigger
// access (open + 1-byte read of the path) inside which the listener releases or restores
// the file on an FMODE_NONOTIFY event fd.
//
// Owns: the connected socket, and the fds it opens for one request (closed before return).
import * as native from "../native/index.js";
import { FAN } from "../native/index.js";

const { O_NOFOLLOW, O_NOATIME } = FAN;

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
    const fd = native.openPath(path, FAN.O_RDONLY | O_NOFOLLOW | O_NOATIME);
    try {
      const id = this.nextId++;
      if (!native.sendWithFd(this.sock, Buffer.from(JSON.stringify({ id, op })), fd))
        throw new Error("admin socket is full");
      for (;;) {
        const reply = await this.receive(timeoutMs);
        if (reply.phase === "trigger") {
          this.trigger(path);
          continue;
        }
        return reply;
      }
    } finally {
      native.close(fd);
    }
  }

  private trigger(path: string): void {
    const fd = native.openPath(path, FAN.O_RDONLY | O_NOFOLLOW | O_NOATIME);
    try {
      native.pread(fd, Buffer.alloc(1), 0);
    } finally {
      native.close(fd);
    }
  }

  private receive(timeoutMs: number): Promise<AdminReply & { phase?: string }> {
    return new Promise((resolve, reject) => {
      const poller = new native.FdPoller(this.sock, () => {
        const msg = native.recvWithFd(this.sock, 65536);
        if (msg === null) return;
        done();
        for (const fd of msg.fds) native.close(fd);
        if (msg.eof) return reject(new Error("the listener closed the admin connection"));
        try {
          resolve(JSON.parse(msg.data.toString("utf8")) as AdminReply & { phase?: string });
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
