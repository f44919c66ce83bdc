// server: wires the recall service together: store client, fd inbox, handlers, the gRPC
// server (RecallService, whose RPCs are in rpc-handlers.ts, + grpc.health.v1) on a unix
// socket, the health monitor, the Prometheus endpoint and the mesh admin API (TLS) when they
// are configured.
//
// Owns: the gRPC servers, the fd inbox (and so every fd received), the store client, the
// metrics (and their HTTP server), the mesh relay.
// Must not own: configuration parsing or privilege changes (main.ts does those first).
import { chmodSync, rmSync } from "node:fs";
import type { Logger } from "pino";
import {
  Health,
  HealthStatus,
  RecallService,
  ServingStatus,
  startServer,
  toHandlers,
  toServiceDefinition,
} from "../proto/index.js";
import type { RunningServer } from "../proto/index.js";
import { ArchiveHandler } from "./archive-handler.js";
import { ChunkCache } from "./chunk-cache.js";
import type { RecallServiceConfig } from "./config.js";
import { recallSocketPaths } from "./config.js";
import { FdInbox } from "./fd-inbox.js";
import { HealthMonitor } from "./health-monitor.js";
import { RecallMetrics } from "./metrics.js";
import { startMetricsServer } from "./metrics-server.js";
import type { MetricsServer } from "./metrics-server.js";
import { NamespaceHandler } from "./namespace-handler.js";
import { ManifestLoader } from "./manifest-loader.js";
import { MeshRelay } from "./mesh-relay.js";
import { startMeshServer } from "./mesh-server.js";
import { MinioStore } from "./minio-store.js";
import type { ObjectStore } from "./object-store.js";
import { RecallHandler } from "./recall-handler.js";
import type { RecallRpcParts } from "./rpc-handlers.js";
import { recallServiceHandlers } from "./rpc-handlers.js";

export interface RecallServer {
  readonly chunks: ChunkCache;
  readonly health: HealthStatus;
  readonly metrics: RecallMetrics;
  /** The bound metrics port, or null when metrics are not served. */
  readonly metricsPort: number | null;
  /** The bound mesh admin address, or null when the mesh admin API is not served. */
  readonly meshAddress: string | null;
  stop(): Promise<void>;
}

/** The working parts of the service: the fd inbox, the caches and the RPC handlers. */
interface ServiceParts extends RecallRpcParts {
  readonly inbox: FdInbox;
  readonly chunks: ChunkCache;
}

/** The servers that run only when configured. */
interface OptionalServers {
  readonly metricsServer: MetricsServer | null;
  readonly mesh: RunningServer | null;
}

export async function startRecallServer(
  config: RecallServiceConfig,
  log: Logger,
  store?: ObjectStore,
): Promise<RecallServer> {
  const paths = recallSocketPaths(config.runDir);
  const parts = createParts(config, log, store ?? new MinioStore(config.s3), paths.fd);
  const { health, monitor } = createHealth(config, parts);
  rmSync(paths.grpc, { force: true });
  const server: RunningServer = await startServer(`unix://${paths.grpc}`, [
    { definition: toServiceDefinition(RecallService), handlers: recallServiceHandlers(parts) },
    { definition: toServiceDefinition(Health), handlers: toHandlers(Health, health.impl()) },
  ]);
  chmodSync(paths.grpc, 0o660);
  monitor.start();
  const { metricsServer, mesh } = await startOptionalServers(config, parts, health);
  const meshAddress = mesh?.address ?? null;
  const meshAdminPort = meshAddress === null ? null : Number(/:(\d+)$/.exec(meshAddress)?.[1]);
  log.info(
    { grpc: paths.grpc, fdChannel: paths.fd, metricsPort: metricsServer?.port ?? null, meshAdminPort },
    "recall service ready",
  );
  return {
    chunks: parts.chunks,
    health,
    metrics: parts.metrics,
    metricsPort: metricsServer?.port ?? null,
    meshAddress,
    stop: async () => {
      monitor.stop();
      parts.relay.close();
      await mesh?.stop(2000);
      await metricsServer?.close();
      parts.inbox.close();
      await server.stop(2000);
    },
  };
}

/** Opens the fd channel at `fdPath` and builds the parts the RPCs hand their calls to. */
function createParts(config: RecallServiceConfig, log: Logger, store: ObjectStore, fdPath: string): ServiceParts {
  const inbox = new FdInbox({
    path: fdPath,
    peerUid: config.listenerUid,
    parkMs: 60_000,
    log: log.child({ component: "fd-inbox" }),
  });
  chmodSync(fdPath, 0o660);
  const chunks = new ChunkCache({
    store,
    log: log.child({ component: "chunks" }),
    maxBytes: config.cacheBytes,
    fetchTimeoutMs: config.fetchTimeoutMs,
  });
  const metrics = new RecallMetrics(() => chunks.bytesFetched);
  const manifests = new ManifestLoader(store);
  const recall = new RecallHandler({
    metrics,
    inbox,
    chunks,
    manifests,
    log: log.child({ component: "recall" }),
    readaheadChunks: config.readaheadChunks,
    parallelFetches: config.parallelFetches,
    fdWaitMs: 5_000,
  });
  const archive = new ArchiveHandler({
    inbox,
    manifests,
    store,
    bucket: config.s3.bucket,
    keyPrefix: config.keyPrefix,
    defaultChunkSize: config.chunkSize,
    log: log.child({ component: "archive" }),
    fdWaitMs: 5_000,
  });
  const namespaces = new NamespaceHandler({
    store,
    bucket: config.s3.bucket,
    keyPrefix: config.keyPrefix,
    log: log.child({ component: "namespace" }),
  });
  return { inbox, chunks, metrics, recall, archive, namespaces, relay: new MeshRelay(), store, log };
}

/** The health table (RecallService NOT_SERVING at first) and the monitor that sets it. */
function createHealth(
  config: RecallServiceConfig,
  parts: ServiceParts,
): { health: HealthStatus; monitor: HealthMonitor } {
  const health = new HealthStatus();
  health.set("", ServingStatus.SERVING);
  // NOT_SERVING until the store answers and a listener reports (health-monitor.ts).
  health.set("recall.v1.RecallService", ServingStatus.NOT_SERVING);
  const monitor = new HealthMonitor({
    store: parts.store,
    bucket: config.s3.bucket,
    health,
    metrics: parts.metrics,
    log: parts.log.child({ component: "health" }),
  });
  return { health, monitor };
}

/** Starts the Prometheus endpoint and the mesh admin API, each when it is configured. */
async function startOptionalServers(
  config: RecallServiceConfig,
  parts: ServiceParts,
  health: HealthStatus,
): Promise<OptionalServers> {
  let metricsServer: MetricsServer | null = null;
  if (config.metricsAddress) metricsServer = await startMetricsServer(parts.metrics, config.metricsAddress);
  const mesh = config.meshAdmin
    ? await startMeshServer({
        config: config.meshAdmin,
        relay: parts.relay,
        health,
        store: parts.store,
        metrics: parts.metrics,
        log: parts.log.child({ component: "mesh-admin" }),
      })
    : null;
  return { metricsServer, mesh };
}
