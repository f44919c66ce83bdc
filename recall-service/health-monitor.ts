// health-monitor: decides the recall service's health from what it can observe: the object
// store answering a probe, and a listener reporting its counters. Every PROBE_INTERVAL_MS it
// probes the store and sets grpc.health.v1's "recall.v1.RecallService" to SERVING only when
// both hold; "" stays SERVING while the process serves (liveness and startup probes use it,
// so a store outage never gets the service restarted or a pod's start blocked).
//
// Owns: the probe timer. Must not own: the health table (proto/health-service.ts) or the
// store client. Holds no fds.
import type { Logger } from "pino";
import { ServingStatus } from "../proto/index.js";
import type { HealthStatus } from "../proto/index.js";
import { errorMessage } from "./errors.js";
import type { RecallMetrics } from "./metrics.js";
import type { ObjectStore } from "./object-store.js";

export const PROBE_INTERVAL_MS = 2_000;
const PROBE_TIMEOUT_MS = 3_000;
/** A listener reports every 5 s; three missed reports mean it is gone. */
export const LISTENER_STALE_MS = 15_000;
export const RECALL_SERVICE_NAME = "recall.v1.RecallService";

export class HealthMonitor {
  private timer: NodeJS.Timeout | null = null;
  private probing = false;

  constructor(
    private readonly opts: {
      store: ObjectStore;
      bucket: string;
      health: HealthStatus;
      metrics: RecallMetrics;
      log: Logger;
    },
  ) {}

  start(): void {
    void this.probe();
    this.timer = setInterval(() => void this.probe(), PROBE_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async probe(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    let storeUp = true;
    try {
      await this.opts.store.ping(this.opts.bucket, AbortSignal.timeout(PROBE_TIMEOUT_MS));
    } catch (err: unknown) {
      storeUp = false;
      if (this.opts.metrics.storeUp === 1)
        this.opts.log.warn({ reason: "store-unavailable", err: errorMessage(err) }, "object store probe failed");
    } finally {
      this.probing = false;
    }
    if (storeUp && this.opts.metrics.storeUp === 0) this.opts.log.info("object store answers again");
    this.opts.metrics.storeUp = storeUp ? 1 : 0;
    const listenerUp = this.opts.metrics.listenerConnected(LISTENER_STALE_MS);
    const serving = storeUp && listenerUp;
    if (this.opts.health.get(RECALL_SERVICE_NAME) !== (serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING))
      this.opts.log.info({ storeUp, listenerUp }, serving ? "health: SERVING" : "health: NOT_SERVING");
    this.opts.health.set(RECALL_SERVICE_NAME, serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);
  }
}
