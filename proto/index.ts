// proto: the recall.v1 contract and the standard grpc.health.v1 service, as generated
// by buf + protoc-gen-es (proto/gen, committed, never edited), plus the grpc-js adapter and
// the one closed set of reasons (reasons.ts).
// Owns nothing at runtime; holds no fds.
export * from "./gen/recall/v1/recall_pb.js";
export {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "./gen/grpc/health/v1/health_pb.js";
export type { HealthCheckRequest, HealthCheckResponse } from "./gen/grpc/health/v1/health_pb.js";
export * from "./grpc-adapter.js";
export * from "./health-service.js";
export * from "./fd-channel-wire.js";
export * from "./reasons.js";
