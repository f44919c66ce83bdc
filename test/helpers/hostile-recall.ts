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
// Owns: the gRPC socket and a gRPC client of the real service; the fd channel through an
// FdRelay (fd-relay.ts); each request's fd from the moment it takes it until the call ends.
// Must not: run as root (the listener refuses any peer but the recall uid).
import { readFileSync, writeSync } from "node:fs";
import { parseArgs } from "node:util";
import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { fdChannelSocketPath, recallGrpcSocketPath } from "../../ipc/run-dir.js";
import * as native from "../../native/index.js";
import { FdRelay } from "./fd-relay.js";
import {
  RecallService,
  RpcError,
  Verdict,
  createClient,
  reasonToProto,
  startServer,
  toHandlers,
  toServiceDefinition,
} from "../../proto/index.js";
import type {
  ArchiveRequest,
  ArchiveResponseSchema,
  CallContext,
  ClientHandle,
  RecallRequest,
  RecallResponseSchema,
  VerifyRequest,
  VerifyResponseSchema,
} from "../../proto/index.js";

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
  // Only for the listener's read-ahead windows (range_only): wrong bytes written and allowed,
  // or no answer at all; every other recall is relayed honestly.
  "wrong-bytes-ahead",
  "stall-ahead",
  // Read-ahead windows written late: 1.5 s after the request, wrong bytes into the window's
  // holes, then an ALLOW (whatever waits for the window must wait for that write).
  "late-ahead",
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

type Reply<S extends typeof RecallResponseSchema | typeof ArchiveResponseSchema> = MessageShape<S>;

function act(fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(fields, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}\n`);
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
      const n = writeSync(fd, junk, 0, Math.min(MiB, end - pos), pos);
      written += n;
    }
  }
  return { written, whole: spans.some(([s, e]) => s === 0 && e === size) };
}

/**
 * Wrong bytes into the holes of the asked ranges only (what a read-ahead window asks for), as a
 * liar would fill in what is missing; the bytes already there are left as they are.
 */
function writeWrongIntoHoles(fd: number, req: RecallRequest): { written: number; whole: boolean } {
  const size = Number(req.file?.size ?? 0n);
  const junk = Buffer.alloc(MiB, WRONG_BYTE);
  let written = 0;
  for (const r of req.ranges) {
    const end = Math.min(size, Number(r.offset) + Number(r.length));
    for (let pos = Number(r.offset); pos < end;) {
      const hole = native.seekHole(fd, pos);
      if (hole === -1 || hole >= end) break;
      const data = native.seekData(fd, hole);
      const stop = data === -1 || data > end ? end : data;
      for (let at = hole; at < stop; at += MiB) written += writeSync(fd, junk, 0, Math.min(MiB, stop - at), at);
      pos = stop;
    }
  }
  return { written, whole: false };
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

/** A recall service that relays to a real one, or misbehaves as its mode says. */
class HostileService {
  private mode = "honest";
  private arg = "";
  private lastKey = "";

  constructor(
    private readonly fds: FdRelay,
    private readonly real: ClientHandle<typeof RecallService.method>,
    private readonly modeFile: string,
  ) {}

  /** Takes up a changed mode file (an unknown mode is reported and ignored). */
  poll(): void {
    const [m = "", a = ""] = readFileSync(this.modeFile, "utf8").trim().split(/\s+/);
    if (m === this.mode && a === this.arg) return;
    if (!(HOSTILE_MODES as readonly string[]).includes(m)) return act({ event: "unknown-mode", mode: m });
    this.mode = m;
    this.arg = a;
    this.fds.accepting(m !== "stop-accepting");
    act({ event: "mode", mode: m, arg: a, pushed: m === "unknown-ids" ? this.fds.pushUnasked() : 0 });
  }

  /** Never answers: the call ends when the caller gives up. */
  private silence(ctx: CallContext, op: string): Promise<never> {
    act({ act: "silent", op });
    return new Promise((_resolve, reject) =>
      ctx.signal.addEventListener("abort", () => reject(new RpcError(status.CANCELLED, "cancelled")), { once: true }),
    );
  }

  /** The request's fd, relayed to the real service (which answers fd-missing itself when there is none). */
  private async relayed(requestId: bigint, ctx: CallContext): Promise<void> {
    const fd = await this.fds.take(requestId, Math.min(5_000, left(ctx).timeoutMs));
    if (fd === null) return;
    try {
      this.fds.relay(requestId, fd);
    } finally {
      native.close(fd);
    }
  }

  async recall(req: RecallRequest, ctx: CallContext): Promise<MessageInitShape<typeof RecallResponseSchema>> {
    const ahead = req.rangeOnly ? this.mode : "";
    if (this.mode === "stop-accepting" || ahead === "stall-ahead") return this.silence(ctx, "recall");
    const forged = ["unknown-ids", "allow-unwritten", "wrong-bytes"].includes(this.mode);
    if (ahead === "late-ahead") return this.lateWindow(req);
    if (forged || ahead === "wrong-bytes-ahead") {
      const fd = await this.fds.take(req.requestId, 5_000);
      if (fd === null) throw new RpcError(status.FAILED_PRECONDITION, "no fd");
      try {
        return this.recallForged(fd, req);
      } finally {
        native.close(fd);
      }
    }
    await this.relayed(req.requestId, ctx);
    const reply = await this.real.client.recall(req, left(ctx));
    if (this.mode === "unknown-ids-after-recall") {
      reply.requestId = unaskedId(req.requestId);
      act({ act: "reply-unknown-id-after-recall", asked: req.requestId, answered: reply.requestId });
    } else if (this.mode === "false-fully-populated" && reply.verdict === Verdict.ALLOW) {
      reply.fullyPopulated = true;
      act({ act: "false-fully-populated", id: req.requestId, ranges: req.ranges.length });
    } else act({ act: "relayed", op: "recall", id: req.requestId, verdict: reply.verdict });
    return reply;
  }

  /** A window written 1.5 s late (wrong bytes into its holes), then allowed. */
  private async lateWindow(req: RecallRequest): Promise<MessageInitShape<typeof RecallResponseSchema>> {
    const fd = await this.fds.take(req.requestId, 5_000);
    if (fd === null) throw new RpcError(status.FAILED_PRECONDITION, "no fd");
    try {
      await new Promise((r) => setTimeout(r, 1500));
      const { written } = writeWrongIntoHoles(fd, req);
      act({ act: "late-window", id: req.requestId, written });
      return allow(req, req.requestId, false, written);
    } finally {
      native.close(fd);
    }
  }

  /** An ALLOW that the real service never gave, through the listener's fd. */
  private recallForged(fd: number, req: RecallRequest): MessageInitShape<typeof RecallResponseSchema> {
    if (this.mode === "unknown-ids") {
      act({ act: "reply-unknown-id", asked: req.requestId, answered: unaskedId(req.requestId) });
      return allow(req, unaskedId(req.requestId), false, 0);
    }
    if (this.mode === "allow-unwritten") {
      act({ act: "allow-unwritten", id: req.requestId });
      return allow(req, req.requestId, true, 0);
    }
    const { written, whole } =
      this.mode === "wrong-bytes-ahead" ? writeWrongIntoHoles(fd, req) : writeWrongBytes(fd, req);
    act({ act: "wrong-bytes", id: req.requestId, written, whole });
    return allow(req, req.requestId, whole, written);
  }

  async archive(req: ArchiveRequest, ctx: CallContext): Promise<MessageInitShape<typeof ArchiveResponseSchema>> {
    if (this.mode === "stop-accepting") return this.silence(ctx, "archive");
    await this.relayed(req.requestId, ctx);
    const reply = await this.real.client.archive(req, left(ctx));
    const key = reply.object?.key ?? "";
    const variant =
      this.mode === "verify-equal"
        ? "content-sha"
        : this.mode === "bogus-archive"
          ? variantFor(this.arg, req.file?.ino)
          : null;
    if (variant !== null) tamperArchive(reply, variant, this.lastKey);
    act({ act: variant === null ? "relayed" : "bogus-archive", op: "archive", variant, ino: req.file?.ino, key });
    this.lastKey = key || this.lastKey;
    return reply;
  }

  async verify(req: VerifyRequest, ctx: CallContext): Promise<MessageInitShape<typeof VerifyResponseSchema>> {
    if (this.mode === "stop-accepting") return this.silence(ctx, "verify");
    if (this.mode === "verify-equal") {
      const fd = await this.fds.take(req.requestId, 5_000);
      if (fd !== null) native.close(fd);
      act({ act: "verify-equal", id: req.requestId });
      return { requestId: req.requestId, equal: true, reason: reasonToProto("verified") };
    }
    await this.relayed(req.requestId, ctx);
    return this.real.client.verify(req, left(ctx));
  }

  /** A call relayed as it is, or never answered while stopped. */
  passThrough<T>(op: string, ctx: CallContext, call: () => Promise<T>): Promise<T> {
    return this.mode === "stop-accepting" ? this.silence(ctx, op) : call();
  }
}

function left(ctx: CallContext): { timeoutMs: number; signal: AbortSignal } {
  return { timeoutMs: Math.max(1, ctx.deadlineMs - Date.now()), signal: ctx.signal };
}

function unaskedId(requestId: bigint): bigint {
  return BigInt.asUintN(64, requestId + 0x1_0000n);
}

function allow(req: RecallRequest, requestId: bigint, fullyPopulated: boolean, written: number) {
  return {
    requestId,
    verdict: Verdict.ALLOW,
    reason: reasonToProto("recalled"),
    bytesWritten: BigInt(written),
    populatedBytes: fullyPopulated ? (req.file?.size ?? 0n) : BigInt(written),
    fullyPopulated,
  };
}

/** The process's entry point: `--listen RUN_DIR --forward RUN_DIR --mode-file FILE` (argv after the script). */
export function hostileRecallMain(args: readonly string[]): void {
  const { values } = parseArgs({
    args: [...args],
    options: { listen: { type: "string" }, forward: { type: "string" }, "mode-file": { type: "string" } },
  });
  const { listen, forward } = values;
  const modeFile = values["mode-file"];
  if (!listen || !forward || !modeFile) throw new Error("usage: --listen RUN_DIR --forward RUN_DIR --mode-file FILE");
  if (process.getuid?.() === 0) throw new Error("the hostile recall service runs as the recall uid, not root");
  const fds = new FdRelay(fdChannelSocketPath(listen), fdChannelSocketPath(forward), (peerUid) =>
    act({ event: "fd-channel-accepted", peerUid }),
  );
  const real = createClient(RecallService, `unix://${recallGrpcSocketPath(forward)}`);
  const svc = new HostileService(fds, real, modeFile);
  setInterval(() => svc.poll(), 50);
  const handlers = toHandlers(RecallService, {
    recall: (req, ctx) => svc.recall(req, ctx),
    archive: (req, ctx) => svc.archive(req, ctx),
    verify: (req, ctx) => svc.verify(req, ctx),
    statObject: (req, ctx) => svc.passThrough("stat", ctx, () => real.client.statObject(req, left(ctx))),
    reportListenerStats: (req, ctx) =>
      svc.passThrough("stats", ctx, () => real.client.reportListenerStats(req, left(ctx))),
    reportPolicyStats: (req, ctx) => svc.passThrough("stats", ctx, () => real.client.reportPolicyStats(req, left(ctx))),
    takeAdminWork: (req, ctx) => svc.passThrough("admin-work", ctx, () => real.client.takeAdminWork(req, left(ctx))),
    finishAdminWork: (req, ctx) =>
      svc.passThrough("admin-work", ctx, () => real.client.finishAdminWork(req, left(ctx))),
    writeRecord: (req, ctx) => svc.passThrough("namespace", ctx, () => real.client.writeRecord(req, left(ctx))),
    listNamespace: (req, ctx) => svc.passThrough("namespace", ctx, () => real.client.listNamespace(req, left(ctx))),
    getNamespaceObject: (req, ctx) =>
      svc.passThrough("namespace", ctx, () => real.client.getNamespaceObject(req, left(ctx))),
    putNamespaceObject: (req, ctx) =>
      svc.passThrough("namespace", ctx, () => real.client.putNamespaceObject(req, left(ctx))),
    deleteNamespaceObjects: (req, ctx) =>
      svc.passThrough("namespace", ctx, () => real.client.deleteNamespaceObjects(req, left(ctx))),
  });
  void startServer(`unix://${recallGrpcSocketPath(listen)}`, [
    { definition: toServiceDefinition(RecallService), handlers },
  ]).then(() => act({ event: "ready", pid: process.pid }));
  process.once("SIGTERM", () => process.exit(0));
}
