// mesh-server: the mesh admin API on TCP with TLS (optionally requiring client certificates
// signed by a configured CA): recall.v1.AdminService (Status, Restore, Archive of one file)
// and grpc.health.v1, so services in a mesh can query or prefetch files. Every file request
// is relayed to the listener (mesh-relay.ts), which resolves the path beneath a directory it
// watches; this side checks only the request's shape. Status also asks the store whether an
// archived copy still exists (a missing one reads as "lost"). One audit record per call.
//
// Owns: the TLS gRPC server and its listening socket. Must not own: paths as files (it opens
// none), fds, or the unix-socket server (server.ts). Reads the PEM files once at start.
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import {
  AdminOp,
  AdminService,
  Health,
  RpcError,
  startServer,
  toHandlers,
  toServiceDefinition,
} from "../proto/index.js";
import type { AdminFileStatus, CallContext, HealthStatus, RunningServer } from "../proto/index.js";
import type { MeshAdminConfig } from "./config.js";
import { errorMessage } from "./errors.js";
import type { MeshRelay } from "./mesh-relay.js";
import type { RecallMetrics } from "./metrics.js";
import type { ObjectStore } from "./object-store.js";

export interface MeshServerOptions {
  readonly config: MeshAdminConfig;
  readonly relay: MeshRelay;
  readonly health: HealthStatus;
  readonly store: ObjectStore;
  readonly metrics: RecallMetrics;
  readonly log: Logger;
}

const MAX_PATH = 4096;
/** Deadlines when the client sets none: status answers fast; restore and archive move data. */
const DEFAULT_WAIT_MS: Record<AdminOp, number> = {
  [AdminOp.UNSPECIFIED]: 30_000,
  [AdminOp.STATUS]: 30_000,
  [AdminOp.RESTORE]: 600_000,
  [AdminOp.ARCHIVE]: 600_000,
};
const MAX_WAIT_MS = 3_600_000;
const OP_NAME: Record<AdminOp, string> = {
  [AdminOp.UNSPECIFIED]: "unspecified",
  [AdminOp.STATUS]: "status",
  [AdminOp.RESTORE]: "restore",
  [AdminOp.ARCHIVE]: "archive",
};

function checkPath(path: string): void {
  if (!path.startsWith("/") || path.includes("\u0000") || Buffer.byteLength(path) > MAX_PATH) {
    throw new RpcError(grpc.status.INVALID_ARGUMENT, "path must be an absolute path of at most 4096 bytes");
  }
}

function credentials(c: MeshAdminConfig): grpc.ServerCredentials {
  const pair = { private_key: readFileSync(c.keyFile), cert_chain: readFileSync(c.certFile) };
  const ca = c.clientCaFile === null ? null : readFileSync(c.clientCaFile);
  return grpc.ServerCredentials.createSsl(ca, [pair], ca !== null);
}

export async function startMeshServer(o: MeshServerOptions): Promise<RunningServer> {
  const lostUnlessStored = async (s: AdminFileStatus): Promise<AdminFileStatus> => {
    if (!s.object || s.state === "resident" || s.state === "dirty") return s;
    try {
      const st = await o.store.stat(s.object, AbortSignal.timeout(10_000));
      return st === null ? { ...s, state: "lost" } : s;
    } catch {
      return s; // The store is unreachable: the state stays what the listener saw.
    }
  };
  const serve = async (op: AdminOp, path: string, ctx: CallContext) => {
    const started = Date.now();
    // The gRPC code name (OK, NOT_FOUND, ...): the metric label `code`; `reason` is only ever a reason name.
    let code = "OK";
    try {
      checkPath(path);
      const wait = Number.isFinite(ctx.deadlineMs) ? ctx.deadlineMs - started : DEFAULT_WAIT_MS[op];
      const result = await o.relay.submit(op, path, started + Math.min(wait, MAX_WAIT_MS));
      return { status: op === AdminOp.STATUS ? await lostUnlessStored(result) : result };
    } catch (err: unknown) {
      code = err instanceof RpcError ? grpc.status[err.code] : "INTERNAL";
      throw err instanceof RpcError ? err : new RpcError(grpc.status.INTERNAL, errorMessage(err));
    } finally {
      o.metrics.recordAdmin(OP_NAME[op], code);
      o.log.info(
        { audit: "admin", op: OP_NAME[op], path, caller: ctx.caller, code, durationMs: Date.now() - started },
        "admin request",
      );
    }
  };
  const address = `${o.config.address.host.includes(":") ? `[${o.config.address.host}]` : o.config.address.host}:${o.config.address.port}`;
  return startServer(
    address,
    [
      {
        definition: toServiceDefinition(AdminService),
        handlers: toHandlers(AdminService, {
          status: (req, ctx) => serve(AdminOp.STATUS, req.path, ctx),
          restore: (req, ctx) => serve(AdminOp.RESTORE, req.path, ctx),
          archive: (req, ctx) => serve(AdminOp.ARCHIVE, req.path, ctx),
        }),
      },
      { definition: toServiceDefinition(Health), handlers: toHandlers(Health, o.health.impl()) },
    ],
    credentials(o.config),
  );
}
