// rpc-handlers: the RecallService handlers served on the recall socket, one function per RPC.
// Recall, Archive and Verify hand over to their handlers (recall-handler.ts,
// archive-handler.ts), the namespace RPCs to namespace-handler.ts; ReportListenerStats stores the listener's figures for /metrics;
// ReportPolicyStats adds what `fanrecall policy` did to them (policy-metrics.ts checks it);
// TakeAdminWork and FinishAdminWork are the two halves of the mesh relay's long poll;
// StatObject asks the store whether an object exists.
//
// Owns nothing: no state and no fds (the handlers and the fd inbox hold those).
// Must not own: the gRPC server or its socket (server.ts), or any path on a watched filesystem.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { RecallService, reasonToProto, toHandlers } from "../proto/index.js";
import type {
  ReportListenerStatsRequest,
  ReportListenerStatsResponseSchema,
  StatObjectRequest,
  StatObjectResponseSchema,
} from "../proto/index.js";
import type { ArchiveHandler } from "./archive-handler.js";
import { errorMessage, storeErrorReason } from "./errors.js";
import type { MeshRelay } from "./mesh-relay.js";
import { listenerRuleCounts, listenerVerdicts } from "./metrics.js";
import type { ListenerSnapshot, RecallMetrics } from "./metrics.js";
import type { NamespaceHandler } from "./namespace-handler.js";
import { namespaceSignal } from "./namespace-handler.js";
import type { ObjectStore } from "./object-store.js";
import type { RecallHandler } from "./recall-handler.js";

/** The parts the RecallService handlers hand their calls to. */
export interface RecallRpcParts {
  readonly recall: RecallHandler;
  readonly archive: ArchiveHandler;
  readonly namespaces: NamespaceHandler;
  readonly metrics: RecallMetrics;
  readonly relay: MeshRelay;
  readonly store: ObjectStore;
  readonly log: Logger;
}

/** The grpc-js handlers of every RecallService RPC. */
export function recallServiceHandlers(p: RecallRpcParts): UntypedServiceImplementation {
  return toHandlers(RecallService, {
    recall: (req, ctx) => p.recall.handle(req, ctx.signal),
    archive: (req) => p.archive.archive(req),
    verify: (req, ctx) => p.archive.verify(req, ctx.signal),
    reportListenerStats: (req) => reportListenerStats(p.metrics, req),
    writeRecord: (req) => p.namespaces.writeRecord(req),
    listNamespace: (req, ctx) => p.namespaces.list(req, namespaceSignal(ctx.signal)),
    getNamespaceObject: (req, ctx) => p.namespaces.get(req, namespaceSignal(ctx.signal)),
    putNamespaceObject: (req) => p.namespaces.put(req),
    deleteNamespaceObjects: (req) => p.namespaces.delete(req),
    // The listener's long poll for mesh requests, and its answer to one it took.
    takeAdminWork: async (req, ctx) => ({ items: await p.relay.take(req.waitMs, ctx.signal, req.maxItems) }),
    finishAdminWork: async (req) => (p.relay.finish(req), {}),
    statObject: (req) => statObject(p.store, p.log, req),
    reportPolicyStats: async (req) => {
      p.metrics.policy.record({
        passes: Number(req.passes),
        lastPassSeconds: req.lastPassSeconds,
        actions: req.actions.map((a) => ({ action: a.action, count: Number(a.count), bytes: Number(a.bytes) })),
        filesystems: req.filesystems.map((f) => ({ dir: f.dir, usedRatio: f.usedRatio })),
      });
      return {};
    },
  });
}

/** ReportListenerStats: the listener's latest figures, shown by /metrics until the next report. */
async function reportListenerStats(
  metrics: RecallMetrics,
  req: ReportListenerStatsRequest,
): Promise<MessageInitShape<typeof ReportListenerStatsResponseSchema>> {
  const snapshot: ListenerSnapshot = {
    pid: req.listenerPid,
    eventsTotal: Number(req.eventsTotal),
    ignoreMarkedFiles: Number(req.ignoreMarkedFiles),
    queueDepth: Number(req.queueDepth),
    verdicts: listenerVerdicts(req.verdicts.map((v) => ({ reason: v.reason, count: Number(v.count) }))),
    rules: listenerRuleCounts(req.rules.map((r) => ({ rule: r.rule, action: r.action, count: Number(r.count) }))),
    receivedMs: Date.now(),
  };
  metrics.listener = snapshot;
  return {};
}

/** StatObject: whether the store holds the object version, and its size. */
async function statObject(
  store: ObjectStore,
  log: Logger,
  req: StatObjectRequest,
): Promise<MessageInitShape<typeof StatObjectResponseSchema>> {
  const o = req.object;
  if (!o) return { exists: false, reason: reasonToProto("protocol-error") };
  try {
    const st = await store.stat({ bucket: o.bucket, key: o.key, versionId: o.versionId }, AbortSignal.timeout(10_000));
    return st
      ? { exists: true, size: BigInt(st.size), reason: reasonToProto("recalled") }
      : { exists: false, reason: reasonToProto("object-missing") };
  } catch (err: unknown) {
    log.warn({ reason: storeErrorReason(err), err: errorMessage(err) }, "stat failed");
    return { exists: false, reason: reasonToProto(storeErrorReason(err)) };
  }
}
