// recall-client: the listener's gRPC client of the recall service. Every call carries a
// deadline; transport failures become listener reasons (never exceptions to the caller).
// Replies are bounded in size: the largest is a manifest's bytes (MAX_MANIFEST_BYTES); a
// larger message is refused by grpc-js before it is decoded. Callers check each reply's
// request id against the one they sent.
//
// Owns: the gRPC channel. Must not own: fds (they travel on the fd channel).
import type { MessageInitShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
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
} from "../proto/index.js";
import { RecallService, RpcError, createClient } from "../proto/index.js";
import { MAX_MANIFEST_BYTES } from "../proto/manifest-format.js";
import type { ListenerReason } from "./failure-policy.js";

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
