// admin-server: the root-only admin socket (SOCK_SEQPACKET in a root-owned 0700 directory)
// that `fanrecall archive|release|restore` use. Each request is one JSON message of at most
// 4 KiB with exactly one fd of the file; the peer must be uid 0 (SO_PEERCRED). One request
// at a time per connection; anything malformed closes that connection only.
//
// The command's fd only names the file: the listener reopens that inode read-only through its
// own private view (no events, and never a fd the command could still use) and closes the
// command's copy at once.
//
// A `roots` request (no fd) asks for the watched directories, each with the (dev, ino) it had
// when the listener started: the command resolves its paths beneath those very directories,
// never through a symlink (cli/watch-roots.ts).
//
// Archive and release requests may carry the command's absolute path of the file: only a label
// for the store's record (the watch it lies beneath gives the namespace, file-places.ts); it is
// never opened. A `stub` request (rebuild, undelete) carries a new, empty file and the stub
// state, owner and mode to give it; admin-ops checks the file before it makes it a stub.
//
// Owns: the listener's own fd of the file until the operation ends; the listening socket and
// accepted connections through a SeqpacketServer (ipc/seqpacket-server.ts). Must not own: what
// the operations do (admin-ops).
import { statSync } from "node:fs";
import type { Logger } from "pino";
import * as native from "../native/index.js";
import { normalize } from "node:path";
import { SeqpacketServer } from "../ipc/seqpacket-server.js";
import type { SeqpacketConn } from "../ipc/seqpacket-server.js";
import type { AdminOps, AdminResult } from "./admin-ops.js";
import { AdminError, OwnedFd } from "./admin-ops.js";
import type { FilePlaces } from "./file-places.js";
import type { WritableViews } from "./writable-view.js";

const MAX_MESSAGE = 4096;

/** A request about one file; `path` is the command's absolute path of it: a label for the store's record, never opened. */
type FileRequest =
  | { id: number; op: "archive" | "release" | "restore"; path: string | null }
  | { id: number; op: "stub"; state: string; uid: number; gid: number; mode: number };
type Request = FileRequest | { id: number; op: "roots" };

/** A watched directory as the admin commands are told it (cli/watch-roots.ts checks it). */
export interface WatchRoot {
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
  readonly namespace: string;
}

export interface AdminServerOptions {
  readonly path: string;
  readonly ops: AdminOps;
  readonly views: WritableViews;
  readonly log: Logger;
  /** The watched directories (config.watch) and their namespaces. */
  readonly watch: readonly string[];
  readonly places: FilePlaces;
}

const isId = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && v <= 0xfffffffe;

function parseRequest(data: Buffer): Request | null {
  try {
    const v = JSON.parse(data.toString("utf8")) as unknown;
    if (typeof v !== "object" || v === null) return null;
    const { id, op, path, state, uid, gid, mode } = v as Record<string, unknown>;
    if (typeof id !== "number" || !Number.isSafeInteger(id)) return null;
    if (op === "roots") return { id, op };
    if (op === "stub") {
      if (typeof state !== "string" || !isId(uid) || !isId(gid) || !isId(mode) || mode > 0o7777) return null;
      return { id, op, state, uid, gid, mode };
    }
    if (op !== "archive" && op !== "release" && op !== "restore") return null;
    if (path !== undefined && (typeof path !== "string" || !path.startsWith("/"))) return null;
    return { id, op, path: path ?? null };
  } catch {
    return null;
  }
}

export class AdminServer {
  private readonly server: SeqpacketServer;
  /** Connections with a file operation running (one request at a time per connection). */
  private readonly busy = new Set<SeqpacketConn>();
  private readonly ops: AdminOps;
  private readonly views: WritableViews;
  private readonly log: Logger;
  private readonly roots: readonly WatchRoot[];
  private readonly places: FilePlaces;

  constructor(opts: AdminServerOptions) {
    this.ops = opts.ops;
    this.views = opts.views;
    this.log = opts.log;
    this.places = opts.places;
    this.roots = opts.watch.map((dir, i) => {
      const st = statSync(dir);
      return { path: dir, dev: st.dev, ino: st.ino, namespace: opts.places.namespaces[i] };
    });
    this.server = new SeqpacketServer({
      path: opts.path,
      backlog: 16,
      dirMode: 0o700,
      socketMode: 0o600,
      peerUid: 0,
      onReadable: (conn) => this.readable(conn),
      onRefused: (peer) => this.log.warn({ peerUid: peer.uid, reason: "protocol-error" }, "admin peer refused"),
    });
  }

  private readable(conn: SeqpacketConn): void {
    const msg = native.recvWithFd(conn.fd, MAX_MESSAGE + 1);
    if (msg === null) return;
    if (msg.eof) {
      this.server.drop(conn);
      return;
    }
    const refused = msg.truncated || msg.data.length > MAX_MESSAGE || this.busy.has(conn);
    const parsed = refused ? null : parseRequest(msg.data);
    const req = parsed !== null && msg.fds.length === (parsed.op === "roots" ? 0 : 1) ? parsed : null;
    if (req === null) {
      for (const fd of msg.fds) native.close(fd);
      this.log.warn({ reason: "protocol-error" }, "malformed admin request");
      this.server.drop(conn);
      return;
    }
    if (req.op === "roots") return this.reply(conn, { id: req.id, ok: true, roots: this.roots });
    this.busy.add(conn);
    void this.serve(conn, req, msg.fds[0]).finally(() => {
      this.busy.delete(conn);
    });
  }

  private async serve(conn: SeqpacketConn, req: FileRequest, clientFd: number): Promise<void> {
    let file: OwnedFd | null = null;
    try {
      file = this.reopen(clientFd);
      const result = await this.run(req, file);
      this.reply(conn, { id: req.id, ok: true, ...result });
    } catch (err: unknown) {
      const reason = err instanceof AdminError ? err.reason : "protocol-error";
      const message = err instanceof Error ? err.message : String(err);
      this.reply(conn, { id: req.id, ok: false, reason, error: message });
    } finally {
      file?.close();
    }
  }

  /** The listener's own read-only fd of the file the command named; the command's fd is closed. */
  private reopen(clientFd: number): OwnedFd {
    try {
      const st = native.fstat(clientFd);
      if ((st.mode & 0o170000) !== 0o100000) throw new AdminError("protocol-error", "not a regular file");
      try {
        return new OwnedFd(this.views.reopen(clientFd, st, "read"));
      } catch {
        throw new AdminError("protocol-error", "not on a watched filesystem");
      }
    } finally {
      native.close(clientFd);
    }
  }

  private run(req: FileRequest, file: OwnedFd): Promise<AdminResult> {
    if (req.op === "stub") return this.ops.makeStub(file, req);
    const place = req.path === null ? null : this.places.of(normalize(req.path));
    if (req.op === "archive") return this.ops.archive(file.fd, place);
    if (req.op === "release") return this.ops.release(file, place);
    return this.ops.restore(file.fd);
  }

  private reply(conn: SeqpacketConn, body: Record<string, unknown>): void {
    if (!this.server.isOpen(conn)) return;
    try {
      native.sendWithFd(conn.fd, Buffer.from(JSON.stringify(body)), -1);
    } catch (err: unknown) {
      this.log.warn({ err: String(err) }, "admin reply failed");
      this.server.drop(conn);
    }
  }

  close(): void {
    this.server.close();
  }
}
