// manifest-loader: fetches chunk manifests from the store and checks each against the
// sha256 that the listener read from the trusted stub state. Verified manifests are kept
// in a small map keyed by that sha256.
//
// Owns: the manifest cache and its in-flight fetches. Must not own: files or fds.
import type { Integrity } from "../proto/index.js";
import { RecallError, storeErrorReason } from "./errors.js";
import { decodeManifest, manifestKey } from "./manifest.js";
import type { Manifest } from "./manifest.js";
import type { ObjectLocation, ObjectStore } from "./object-store.js";

const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;
const MAX_CACHED = 256;

export class ManifestLoader {
  private readonly cache = new Map<string, Manifest>();
  private readonly inflight = new Map<string, Promise<Manifest>>();

  constructor(private readonly store: ObjectStore) {}

  async get(loc: ObjectLocation, integrity: Integrity, size: number, signal: AbortSignal): Promise<Manifest> {
    const key = integrity.manifestSha256;
    const hit = this.cache.get(key);
    if (hit) return hit;
    let p = this.inflight.get(key);
    if (!p) {
      p = this.fetch(loc, integrity, size, signal).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    const m = await p;
    if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(key, m);
    return m;
  }

  private async fetch(loc: ObjectLocation, integrity: Integrity, size: number, signal: AbortSignal): Promise<Manifest> {
    const mloc: ObjectLocation = { bucket: loc.bucket, key: manifestKey(loc.key), versionId: "" };
    let raw: Buffer;
    try {
      const stream = await this.store.getStream(mloc, signal);
      const parts: Buffer[] = [];
      let total = 0;
      for await (const part of stream) {
        const b = part as Buffer;
        total += b.length;
        if (total > MAX_MANIFEST_BYTES) throw new RecallError("protocol-error", "manifest too large");
        parts.push(b);
      }
      raw = Buffer.concat(parts, total);
    } catch (err: unknown) {
      if (err instanceof RecallError) throw err;
      throw new RecallError(storeErrorReason(err), `manifest fetch failed: ${String(err)}`, { cause: err });
    }
    return decodeManifest(raw, integrity.manifestSha256, { size, chunkSize: Number(integrity.chunkSize) });
  }
}
