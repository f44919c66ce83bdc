// manifest-loader: fetches chunk manifests from the store (by the manifest's version id when
// the stub state has one) and checks each against the sha256 that the listener read from
// the trusted stub state. Verified manifests are kept, with their bytes as stored (the
// listener asks for those to check recalled bytes itself), in a small map keyed by that sha256.
//
// Owns: the manifest cache and its in-flight fetches. Must not own: files or fds.
import type { Integrity } from "../proto/index.js";
import { MAX_MANIFEST_BYTES } from "../proto/manifest-format.js";
import { RecallError, storeErrorReason } from "./errors.js";
import { decodeManifest, manifestKey } from "./manifest.js";
import type { Manifest } from "./manifest.js";
import type { ObjectLocation, ObjectStore } from "./object-store.js";

const MAX_CACHED = 256;

/** Where a file's manifest is: beside its data object, at the version the stub state names. */
export interface ManifestLocation {
  readonly bucket: string;
  /** The data object's key (the manifest's is derived from it). */
  readonly key: string;
  /** The manifest object's version id ("" where the store keeps none). */
  readonly manifestVersionId: string;
}

/** A checked manifest and the bytes it was decoded from. */
export interface LoadedManifest {
  readonly manifest: Manifest;
  readonly raw: Buffer;
}

export class ManifestLoader {
  private readonly cache = new Map<string, LoadedManifest>();
  private readonly inflight = new Map<string, Promise<LoadedManifest>>();

  constructor(private readonly store: ObjectStore) {}

  async get(loc: ManifestLocation, integrity: Integrity, size: number, signal: AbortSignal): Promise<Manifest> {
    return (await this.load(loc, integrity, size, signal)).manifest;
  }

  /** The manifest with its bytes, from the cache or the store. */
  async load(loc: ManifestLocation, integrity: Integrity, size: number, signal: AbortSignal): Promise<LoadedManifest> {
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

  /** Reads the manifest back from the store now (never from the cache): for a release's verify. */
  readBack(loc: ManifestLocation, integrity: Integrity, size: number, signal: AbortSignal): Promise<LoadedManifest> {
    return this.fetch(loc, integrity, size, signal);
  }

  private async fetch(
    loc: ManifestLocation,
    integrity: Integrity,
    size: number,
    signal: AbortSignal,
  ): Promise<LoadedManifest> {
    const mloc: ObjectLocation = { bucket: loc.bucket, key: manifestKey(loc.key), versionId: loc.manifestVersionId };
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
    return {
      manifest: decodeManifest(raw, integrity.manifestSha256, { size, chunkSize: Number(integrity.chunkSize) }),
      raw,
    };
  }
}
