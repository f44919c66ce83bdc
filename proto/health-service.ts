// health-service: an implementation of the standard grpc.health.v1 service whose status
// the owner sets (SERVING / NOT_SERVING per service name; "" is the whole server).
//
// Owns: the status table and the open Watch streams. Must not own: deciding health (the
// recall service decides from the store and the listener connection). Holds no fds.
import type { HealthCheckResponse_ServingStatus, Health } from "./gen/grpc/health/v1/health_pb.js";
import { HealthCheckResponse_ServingStatus as Status } from "./gen/grpc/health/v1/health_pb.js";
import type { ServiceImpl } from "./grpc-adapter.js";
import { RpcError } from "./grpc-adapter.js";
import { status as grpcStatus } from "@grpc/grpc-js";

type HealthMethods = typeof Health extends { method: infer M } ? { [K in keyof M]: M[K] } : never;

/** A settable health table that serves Check and Watch. */
export class HealthStatus {
  private readonly statuses = new Map<string, HealthCheckResponse_ServingStatus>();
  private readonly watchers = new Set<{ service: string; send: (s: HealthCheckResponse_ServingStatus) => void }>();

  set(service: string, status: HealthCheckResponse_ServingStatus): void {
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const w of this.watchers) if (w.service === service) w.send(status);
  }

  get(service: string): HealthCheckResponse_ServingStatus | undefined {
    return this.statuses.get(service);
  }

  /** The handlers for the Health service. */
  impl(): ServiceImpl<HealthMethods> {
    return {
      check: async (request) => {
        const status = this.statuses.get(request.service);
        if (status === undefined) throw new RpcError(grpcStatus.NOT_FOUND, `unknown service "${request.service}"`);
        return { status };
      },
      watch: (request, send, ctx) =>
        new Promise<void>((resolve) => {
          const watcher = {
            service: request.service,
            send: (status: HealthCheckResponse_ServingStatus) => send({ status }),
          };
          watcher.send(this.statuses.get(request.service) ?? Status.SERVICE_UNKNOWN);
          this.watchers.add(watcher);
          ctx.signal.addEventListener("abort", () => {
            this.watchers.delete(watcher);
            resolve();
          });
        }),
    };
  }
}
