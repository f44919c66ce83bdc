// recall-client: the listener's gRPC client of the recall service. Every call carries a
// deadline; transport failures become listener reasons (never exceptions to the caller).
// Replies are bounded in size: the largest is a manifest's bytes (MAX_MANIFEST_BYTES); a
// larger message is refused by grpc-js before it is decoded. A request about an fd (recall,
// archive, verify) goes through FdRequests, the one place its id is made, sent with the fd
// and checked on the reply: a reply for another request is refused (protocol-error).
//
// Owns: the gRPC channel and the request id counter. Must not own: fds (they travel on the
// fd channel; FdRequests only hands it the caller's fd number).
import type { MessageInitShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type {
  FinishAdminWorkRequestSchema,
  TakeAdminWorkResponse,
  ArchiveRequestSchema,
  ArchiveResponse,
  ReportListenerStatsRequestSchema,
  RecallRequestSchema,
  RecallResponse,
  VerifyRequestSchema,
  VerifyResponse,
  WriteRecordRequestSchema,
  WriteRecordResponse,
} from "../proto/index.js";
import { RecallService, RpcError, createClient } from "../proto/index.js";
import { MAX_MANIFEST_BYTES } from "../proto/manifest-format.js";
import type { ListenerReason } from "./failure-policy.js";
import type { FdChannel } from "./fd-channel.js";

/** HTTP/2 flow-control window of the channel: a manifest of a file up to 16 GiB arrives in one go. */
const REPLY_WINDOW_BYTES = 4 * 1024 * 1024;

export type RpcResult<T> = { ok: true; value: T } | { ok: false; reason: ListenerReason; message: string };

function failure(err: unknown): { ok: false; reason: ListenerReason; message: string } {
  if (err instanceof RpcError) {
    const reason: ListenerReason =
      err.code === status.DEADLINE_EXCEEDED
        ? "timeout"
        : err.code === status.UNAVAILABLE
          ? "recall-unavailable"
          : "protocol-error";
    return { ok: false, reason, message: err.message };
  }
  return { ok: false, reason: "protocol-error", message: String(err) };
}

export class RecallClient {
  private readonly handle;

  constructor(socketPath: string) {
    // A local socket: reconnect within a second once the recall service is back (grpc-js
    // would otherwise back off up to two minutes, failing recalls long after it returned).
    this.handle = createClient(RecallService, `unix://${socketPath}`, undefined, {
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 1_000,
      "grpc.max_receive_message_length": MAX_MANIFEST_BYTES + 64 * 1024,
      // A reply carrying a manifest (64 KiB for 256 MiB of file) would otherwise stop at
      // HTTP/2's 64 KiB start window and wait a round trip for the window update.
      "grpc-node.flow_control_window": REPLY_WINDOW_BYTES,
    });
  }

  private async call<T>(fn: () => Promise<T>): Promise<RpcResult<T>> {
    try {
      return { ok: true, value: await fn() };
    } catch (err: unknown) {
      return failure(err);
    }
  }

  recall(req: MessageInitShape<typeof RecallRequestSchema>, timeoutMs: number): Promise<RpcResult<RecallResponse>> {
    return this.call(() => this.handle.client.recall(req, { timeoutMs }));
  }

  archive(req: MessageInitShape<typeof ArchiveRequestSchema>, timeoutMs: number): Promise<RpcResult<ArchiveResponse>> {
    return this.call(() => this.handle.client.archive(req, { timeoutMs }));
  }

  verify(req: MessageInitShape<typeof VerifyRequestSchema>, timeoutMs: number): Promise<RpcResult<VerifyResponse>> {
    return this.call(() => this.handle.client.verify(req, { timeoutMs }));
  }

  /** Appends a file record to a namespace in the store (proto/namespace-format.ts). */
  writeRecord(req: MessageInitShape<typeof WriteRecordRequestSchema>): Promise<RpcResult<WriteRecordResponse>> {
    return this.call(() => this.handle.client.writeRecord(req, { timeoutMs: 30_000 }));
  }

  reportListenerStats(
    req: MessageInitShape<typeof ReportListenerStatsRequestSchema>,
    timeoutMs: number,
  ): Promise<RpcResult<unknown>> {
    return this.call(() => this.handle.client.reportListenerStats(req, { timeoutMs }));
  }

  /** The long poll for mesh admin requests (see recall.proto TakeAdminWork). */
  takeAdminWork(waitMs: number, maxItems: number): Promise<RpcResult<TakeAdminWorkResponse>> {
    return this.call(() => this.handle.client.takeAdminWork({ waitMs, maxItems }, { timeoutMs: waitMs + 5_000 }));
  }

  finishAdminWork(req: MessageInitShape<typeof FinishAdminWorkRequestSchema>): Promise<RpcResult<unknown>> {
    return this.call(() => this.handle.client.finishAdminWork(req, { timeoutMs: 10_000 }));
  }

  close(): void {
    this.handle.close();
  }
}

/**
 * Requests about an fd, each under an id of its own: the fd goes on the fd channel under the
 * id, the RPC carries the same id, and a reply naming another id is refused (protocol-error).
 * An fd that cannot be sent is recall-unavailable (the recall service is not connected), and
 * the RPC is not made.
 */
export class FdRequests {
  /** Random start: ids never repeat across listener restarts (the recall service may still hold old ones). */
  private nextId = BigInt.asUintN(62, BigInt(Date.now()) << 20n) | BigInt(Math.floor(Math.random() * 2 ** 20)) | 1n;

  constructor(
    private readonly channel: Pick<FdChannel, "send">,
    private readonly log: Logger,
  ) {}

  /** Sends `fd` under a new id, then runs `rpc` with that id (only once the fd is sent) and checks the reply's id. */
  async call<T extends { readonly requestId: bigint }>(
    what: "recall" | "archive" | "verify",
    fd: number,
    rpc: (requestId: bigint) => Promise<RpcResult<T>>,
  ): Promise<RpcResult<T>> {
    const requestId = this.nextId++;
    try {
      this.channel.send(requestId, fd);
    } catch (err: unknown) {
      this.log.warn({ err: String(err), reason: "recall-unavailable" }, "fd channel send failed");
      return { ok: false, reason: "recall-unavailable", message: err instanceof Error ? err.message : String(err) };
    }
    const reply = await rpc(requestId);
    if (!reply.ok || reply.value.requestId === requestId) return reply;
    const message = `${what} reply for another request`;
    this.log.error({ reason: "protocol-error" }, message);
    return { ok: false, reason: "protocol-error", message };
  }
}
