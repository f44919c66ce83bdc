// server: wires the recall service together: store client, fd inbox, handlers, the gRPC
// server (RecallService + grpc.health.v1) on a unix socket, the health monitor, the
// Prometheus endpoint and the mesh admin API (TLS) when they are configured.
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
  reasonToProto,
  startServer,
  toHandlers,
  toServiceDefinition,
} from "../proto/index.js";
import type { RunningServer } from "../proto/index.js";
import { ArchiveHandler } from "./archive-handler.js";
import { ChunkCache } from "./chunk-cache.js";
import type { RecallServiceConfig } from "./config.js";
import { recallSocketPaths } from "./config.js";
import { errorMessage, storeErrorReason } from "./errors.js";
import { FdInbox } from "./fd-inbox.js";
import { HealthMonitor } from "./health-monitor.js";
import { RecallMetrics, listenerRuleCounts, listenerVerdicts } from "./metrics.js";
import type { ListenerSnapshot } from "./metrics.js";
import { startMetricsServer } from "./metrics-server.js";
import type { MetricsServer } from "./metrics-server.js";
import { NamespaceHandler, namespaceSignal } from "./namespace-handler.js";
import { ManifestLoader } from "./manifest-loader.js";
import { MeshRelay } from "./mesh-relay.js";
import { startMeshServer } from "./mesh-server.js";
import { MinioStore } from "./minio-store.js";
import type { ObjectStore } from "./object-store.js";
import { RecallHandler } from "./recall-handler.js";

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

export async function startRecallServer(
  config: RecallServiceConfig,
  log: Logger,
  store?: ObjectStore,
): Promise<RecallServer> {
  const paths = recallSocketPaths(config.runDir);
  const objectStore = store ?? new MinioStore(config.s3);
  const inbox = new FdInbox({
    path: paths.fd,
    peerUid: config.listenerUid,
    parkMs: 60_000,
    log: log.child({ component: "fd-inbox" }),
  });
  chmodSync(paths.fd, 0o660);
  const chunks = new ChunkCache({
    store: objectStore,
    log: log.child({ component: "chunks" }),
    maxBytes: config.cacheBytes,
    fetchTimeoutMs: config.fetchTimeoutMs,
  });
  const metrics = new RecallMetrics(() => chunks.bytesFetched);
  const manifests = new ManifestLoader(objectStore);
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
    store: objectStore,
    bucket: config.s3.bucket,
    keyPrefix: config.keyPrefix,
    defaultChunkSize: config.chunkSize,
    log: log.child({ component: "archive" }),
    fdWaitMs: 5_000,
  });
  const namespaces = new NamespaceHandler({
    store: objectStore,
    bucket: config.s3.bucket,
    keyPrefix: config.keyPrefix,
    log: log.child({ component: "namespace" }),
  });
  const health = new HealthStatus();
  health.set("", ServingStatus.SERVING);
  // NOT_SERVING until the store answers and a listener reports (health-monitor.ts).
  health.set("recall.v1.RecallService", ServingStatus.NOT_SERVING);
  const monitor = new HealthMonitor({
    store: objectStore,
    bucket: config.s3.bucket,
    health,
    metrics,
    log: log.child({ component: "health" }),
  });
  const relay = new MeshRelay();
  rmSync(paths.grpc, { force: true });
  const server: RunningServer = await startServer(`unix://${paths.grpc}`, [
    {
      definition: toServiceDefinition(RecallService),
      handlers: toHandlers(RecallService, {
        recall: (req, ctx) => recall.handle(req, ctx.signal),
        archive: (req) => archive.archive(req),
        verify: (req, ctx) => archive.verify(req, ctx.signal),
        reportListenerStats: async (req) => {
          const snapshot: ListenerSnapshot = {
            pid: req.listenerPid,
            eventsTotal: Number(req.eventsTotal),
            ignoreMarkedFiles: Number(req.ignoreMarkedFiles),
            queueDepth: Number(req.queueDepth),
            verdicts: listenerVerdicts(req.verdicts.map((v) => ({ reason: v.reason, count: Number(v.count) }))),
            rules: listenerRuleCounts(
              req.rules.map((r) => ({ rule: r.rule, action: r.action, count: Number(r.count) })),
            ),
            receivedMs: Date.now(),
          };
          metrics.listener = snapshot;
          return {};
        },
        writeRecord: (req) => namespaces.writeRecord(req),
        listNamespace: (req, ctx) => namespaces.list(req, namespaceSignal(ctx.signal)),
        getNamespaceObject: (req, ctx) => namespaces.get(req, namespaceSignal(ctx.signal)),
        putNamespaceObject: (req) => namespaces.put(req),
        deleteNamespaceObjects: (req) => namespaces.delete(req),
        takeAdminWork: async (req, ctx) => ({ items: await relay.take(req.waitMs, ctx.signal, req.maxItems) }),
        finishAdminWork: async (req) => {
          relay.finish(req);
          return {};
        },
        statObject: async (req) => {
          const o = req.object;
          if (!o) return { exists: false, reason: reasonToProto("protocol-error") };
          try {
            const st = await objectStore.stat(
              { bucket: o.bucket, key: o.key, versionId: o.versionId },
              AbortSignal.timeout(10_000),
            );
            return st
              ? { exists: true, size: BigInt(st.size), reason: reasonToProto("recalled") }
              : { exists: false, reason: reasonToProto("object-missing") };
          } catch (err: unknown) {
            log.warn({ reason: storeErrorReason(err), err: errorMessage(err) }, "stat failed");
            return { exists: false, reason: reasonToProto(storeErrorReason(err)) };
          }
        },
      }),
    },
    { definition: toServiceDefinition(Health), handlers: toHandlers(Health, health.impl()) },
  ]);
  chmodSync(paths.grpc, 0o660);
  monitor.start();
  let metricsServer: MetricsServer | null = null;
  if (config.metricsAddress) metricsServer = await startMetricsServer(metrics, config.metricsAddress);
  const mesh = config.meshAdmin
    ? await startMeshServer({
        config: config.meshAdmin,
        relay,
        health,
        store: objectStore,
        metrics,
        log: log.child({ component: "mesh-admin" }),
      })
    : null;
  const meshAddress = mesh?.address ?? null;
  const meshAdminPort = meshAddress === null ? null : Number(/:(\d+)$/.exec(meshAddress)?.[1]);
  log.info(
    { grpc: paths.grpc, fdChannel: paths.fd, metricsPort: metricsServer?.port ?? null, meshAdminPort },
    "recall service ready",
  );
  return {
    chunks,
    health,
    metrics,
    metricsPort: metricsServer?.port ?? null,
    meshAddress,
    stop: async () => {
      monitor.stop();
      relay.close();
      await mesh?.stop(2000);
      await metricsServer?.close();
      inbox.close();
      await server.stop(2000);
    },
  };
}
