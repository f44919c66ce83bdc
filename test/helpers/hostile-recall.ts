// test/helpers/hostile-recall.ts: a hostile recall service, for tests. It runs as its own
// process, as the recall uid, and stands where the listener expects the recall service: it
// owns the fd channel socket (SOCK_SEQPACKET, SCM_RIGHTS) and the gRPC socket of RUN_DIR/recall,
// and relays both to a real recall service on other paths. A mode, read from a file the test
// writes (polled every 50 ms; each change is acknowledged on stdout), says how it misbehaves:
//   honest                    relays everything unchanged
//   stop-accepting            stops accept()/recv on the fd channel (drops the accepted
//                             connections, backlog of 1) and never answers an RPC
//   unknown-ids               Recall: ALLOW for an id never asked, nothing written; and FD_OFFER
//                             messages for ids never asked pushed back at the listener
//   unknown-ids-after-recall  Recall relayed (the real bytes are written), answered under another id
//   false-fully-populated     Recall relayed, the ALLOW then claims fullyPopulated
//   allow-unwritten           ALLOW with fullyPopulated, nothing written
//   wrong-bytes               writes 0xAA over the asked chunks and 1 MiB beyond, then ALLOW
//   bogus-archive VARIANT     Archive relayed, one field of the reply then falsified (VARIANT
//                             for every file, or INO=VARIANT,... per inode)
//   verify-equal              Archive relayed with a wrong contentSha256; Verify answers "equal"
//                             without looking
// Every hostile act is reported as one JSON line on stdout ({"act":...}), so a test can show
// that the hostility really happened.
//
// Owns: its two listening sockets, the accepted fd-channel connections, every fd received until
// the matching RPC takes it (or 30 s pass), the connection to the real service's fd channel and
// a gRPC client of it. Must not: run as root (the listener refuses any peer but the recall uid).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { MessageShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import * as native from "../../native/index.js";
import {
  FD_CHANNEL_HEADER_BYTES,
  FdMessageType,
  RecallService,
  RpcError,
  Verdict,
  createClient,
  decodeFdHeader,
  encodeFdHeader,
  reasonToProto,
  startServer,
  toHandlers,
  toServiceDefinition,
} from "../../proto/index.js";
import type { ArchiveResponseSchema, CallContext, RecallRequest, RecallResponseSchema } from "../../proto/index.js";

export const HOSTILE_MODES = [
  "honest",
  "stop-accepting",
  "unknown-ids",
  "unknown-ids-after-recall",
  "false-fully-populated",
  "allow-unwritten",
  "wrong-bytes",
  "bogus-archive",
  "verify-equal",
] as const;
export type HostileMode = (typeof HOSTILE_MODES)[number];

/** How bogus-archive falsifies the Archive reply. */
export const BOGUS_ARCHIVE_VARIANTS = [
  "content-sha",
  "manifest-sha",
  "chunk-size-0",
  "chunk-size-unaligned",
  "non-hex",
  "key-control-chars",
  "size",
  "other-key",
] as const;
export type BogusArchiveVariant = (typeof BOGUS_ARCHIVE_VARIANTS)[number];

/** A well-formed sha256 that no test file has. */
export const BOGUS_SHA256 = "0bad".repeat(16);
const WRONG_BYTE = 0xaa;
const MiB = 1024 * 1024;
const PARK_MS = 30_000;

type Reply<S extends typeof RecallResponseSchema | typeof ArchiveResponseSchema> = MessageShape<S>;

function act(fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(fields, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}\n`);
}

/** The fd channel, listener side: parks each received fd under its requestId. */
class FdRelay {
  private readonly listenFd: number;
  private listenPoller: native.FdPoller | null = null;
  private readonly conns = new Map<number, native.FdPoller>();
  private readonly parked = new Map<bigint, { fd: number; timer: ReturnType<typeof setTimeout> }>();
  private readonly waiters = new Map<bigint, (fd: number | null) => void>();
  private forward = -1;

  constructor(
    path: string,
    private readonly forwardPath: string,
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
      act({ event: "fd-channel-accepted", peerUid: native.peerCred(conn).uid });
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

/** Writes 0xAA over the chunks a recall asked for, and 1 MiB beyond, through the listener's fd. */
function writeWrongBytes(fd: number, req: RecallRequest): { written: number; whole: boolean } {
  const size = Number(req.file?.size ?? 0n);
  const chunk = Number(req.integrity?.chunkSize ?? 0n) || 4 * MiB;
  const spans =
    req.ranges.length === 0
      ? [[0, size]]
      : req.ranges.map((r) => {
          const start = Math.floor(Number(r.offset) / chunk) * chunk;
          const end = Math.ceil((Number(r.offset) + Number(r.length)) / chunk) * chunk + MiB;
          return [start, Math.min(size, end)];
        });
  const junk = Buffer.alloc(MiB, WRONG_BYTE);
  let written = 0;
  for (const [start, end] of spans) {
    for (let pos = start; pos < end; pos += MiB) {
      const n = native.pwrite(fd, junk.subarray(0, Math.min(MiB, end - pos)), pos);
      written += n;
    }
  }
  return { written, whole: spans.some(([s, e]) => s === 0 && e === size) };
}

/**
 * The bogus-archive variant for an inode: the mode's argument is either one variant for every
 * file, or `INO=VARIANT,INO=VARIANT...` (files not named are archived honestly).
 */
function variantFor(arg: string, ino: bigint | undefined): string | null {
  if (!arg.includes("=")) return arg;
  for (const pair of arg.split(",")) {
    const [i, v] = pair.split("=");
    if (ino !== undefined && i === ino.toString() && v) return v;
  }
  return null;
}

function tamperArchive(reply: Reply<typeof ArchiveResponseSchema>, variant: string, lastKey: string): void {
  const integrity = reply.integrity;
  const object = reply.object;
  if (!integrity || !object) return;
  if (variant === "content-sha") integrity.contentSha256 = BOGUS_SHA256;
  else if (variant === "manifest-sha") integrity.manifestSha256 = BOGUS_SHA256;
  else if (variant === "chunk-size-0") integrity.chunkSize = 0n;
  else if (variant === "chunk-size-unaligned") integrity.chunkSize = 4097n;
  else if (variant === "non-hex") integrity.contentSha256 = "zz".repeat(32);
  else if (variant === "key-control-chars") object.key = `${object.key}\n\u0001`;
  else if (variant === "size") reply.size += 1n;
  else if (variant === "other-key" && lastKey !== "") object.key = lastKey;
  else throw new Error(`bogus-archive: unknown variant '${variant}'`);
}

/** The process's entry point: `--listen DIR --forward DIR --mode-file FILE` (argv after the script). */
export function hostileRecallMain(args: readonly string[]): void {
  const { values } = parseArgs({
    args: [...args],
    options: { listen: { type: "string" }, forward: { type: "string" }, "mode-file": { type: "string" } },
  });
  const listenDir = values.listen;
  const forwardDir = values.forward;
  const modeFile = values["mode-file"];
  if (!listenDir || !forwardDir || !modeFile) throw new Error("usage: --listen DIR --forward DIR --mode-file FILE");
  if (process.getuid?.() === 0) throw new Error("the hostile recall service runs as the recall uid, not root");
  const fds = new FdRelay(join(listenDir, "fd.sock"), join(forwardDir, "fd.sock"));
  const real = createClient(RecallService, `unix://${join(forwardDir, "recall.sock")}`);
  let mode = "honest";
  let arg = "";
  let lastKey = "";
  const poll = (): void => {
    const [m = "", a = ""] = readFileSync(modeFile, "utf8").trim().split(/\s+/);
    if (m === mode && a === arg) return;
    if (!(HOSTILE_MODES as readonly string[]).includes(m)) return act({ event: "unknown-mode", mode: m });
    mode = m;
    arg = a;
    fds.accepting(mode !== "stop-accepting");
    const pushed = mode === "unknown-ids" ? fds.pushUnasked() : 0;
    act({ event: "mode", mode, arg, pushed });
  };
  setInterval(poll, 50);

  const left = (ctx: CallContext) => ({ timeoutMs: Math.max(1, ctx.deadlineMs - Date.now()), signal: ctx.signal });
  /** Never answers: the call ends when the caller gives up. */
  const silence = (ctx: CallContext, op: string): Promise<never> => {
    act({ act: "silent", op });
    return new Promise((_resolve, reject) =>
      ctx.signal.addEventListener("abort", () => reject(new RpcError(status.CANCELLED, "cancelled")), { once: true }),
    );
  };
  /** The request's fd, relayed to the real service. */
  const relayed = async (requestId: bigint, ctx: CallContext): Promise<void> => {
    const fd = await fds.take(requestId, Math.min(5_000, left(ctx).timeoutMs));
    if (fd === null) return; // the real service answers fd-missing itself
    try {
      fds.relay(requestId, fd);
    } finally {
      native.close(fd);
    }
  };
  const allow = (req: RecallRequest, requestId: bigint, fullyPopulated: boolean, written: number) => ({
    requestId,
    verdict: Verdict.ALLOW,
    reason: reasonToProto("recalled"),
    bytesWritten: BigInt(written),
    populatedBytes: fullyPopulated ? (req.file?.size ?? 0n) : BigInt(written),
    fullyPopulated,
  });

  const recall = async (req: RecallRequest, ctx: CallContext) => {
    if (mode === "stop-accepting") return silence(ctx, "recall");
    if (mode === "unknown-ids" || mode === "allow-unwritten" || mode === "wrong-bytes") {
      const fd = await fds.take(req.requestId, 5_000);
      if (fd === null) throw new RpcError(status.FAILED_PRECONDITION, "no fd");
      try {
        const unasked = BigInt.asUintN(64, req.requestId + 0x1_0000n);
        if (mode === "unknown-ids") {
          act({ act: "reply-unknown-id", asked: req.requestId, answered: unasked });
          return allow(req, unasked, false, 0);
        }
        if (mode === "allow-unwritten") {
          act({ act: "allow-unwritten", id: req.requestId });
          return allow(req, req.requestId, true, 0);
        }
        const { written, whole } = writeWrongBytes(fd, req);
        act({ act: "wrong-bytes", id: req.requestId, written, whole });
        return allow(req, req.requestId, whole, written);
      } finally {
        native.close(fd);
      }
    }
    await relayed(req.requestId, ctx);
    const reply = await real.client.recall(req, left(ctx));
    if (mode === "unknown-ids-after-recall") {
      reply.requestId = BigInt.asUintN(64, req.requestId + 0x1_0000n);
      act({ act: "reply-unknown-id-after-recall", asked: req.requestId, answered: reply.requestId });
    } else if (mode === "false-fully-populated" && reply.verdict === Verdict.ALLOW) {
      reply.fullyPopulated = true;
      act({ act: "false-fully-populated", id: req.requestId, ranges: req.ranges.length });
    } else act({ act: "relayed", op: "recall", id: req.requestId, verdict: reply.verdict });
    return reply;
  };

  const service = toHandlers(RecallService, {
    recall,
    archive: async (req, ctx) => {
      if (mode === "stop-accepting") return silence(ctx, "archive");
      await relayed(req.requestId, ctx);
      const reply = await real.client.archive(req, left(ctx));
      const key = reply.object?.key ?? "";
      if (mode === "bogus-archive") {
        const variant = variantFor(arg, req.file?.ino);
        if (variant !== null) tamperArchive(reply, variant, lastKey);
      }
      if (mode === "verify-equal") tamperArchive(reply, "content-sha", lastKey);
      act({
        act: mode === "honest" ? "relayed" : "bogus-archive",
        op: "archive",
        variant: arg,
        key: reply.object?.key,
      });
      lastKey = key || lastKey;
      return reply;
    },
    verify: async (req, ctx) => {
      if (mode === "stop-accepting") return silence(ctx, "verify");
      if (mode === "verify-equal") {
        const fd = await fds.take(req.requestId, 5_000);
        if (fd !== null) native.close(fd);
        act({ act: "verify-equal", id: req.requestId });
        return { requestId: req.requestId, equal: true, reason: reasonToProto("verified") };
      }
      await relayed(req.requestId, ctx);
      return real.client.verify(req, left(ctx));
    },
    statObject: (req, ctx) =>
      mode === "stop-accepting" ? silence(ctx, "stat") : real.client.statObject(req, left(ctx)),
    reportListenerStats: (req, ctx) =>
      mode === "stop-accepting" ? silence(ctx, "stats") : real.client.reportListenerStats(req, left(ctx)),
    takeAdminWork: (req, ctx) =>
      mode === "stop-accepting" ? silence(ctx, "admin-work") : real.client.takeAdminWork(req, left(ctx)),
    finishAdminWork: (req, ctx) =>
      mode === "stop-accepting" ? silence(ctx, "admin-work") : real.client.finishAdminWork(req, left(ctx)),
  });
  void startServer(`unix://${join(listenDir, "recall.sock")}`, [
    { definition: toServiceDefinition(RecallService), handlers: service },
  ]).then(() => act({ event: "ready", pid: process.pid }));
  process.once("SIGTERM", () => process.exit(0));
}
