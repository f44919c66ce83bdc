// manifest: the per-chunk sha256 list that lets every ranged recall be verified.
// Stored as a small JSON object beside the data object; its own sha256 lives in the
// trusted stub state, so a forged or corrupted manifest is refused.
//
// Owns: building, encoding, decoding and checking manifests. Must not own: fetching or
// storing them. Holds no fds.
import { createHash } from "node:crypto";
import { RecallError } from "./errors.js";

export interface Manifest {
  readonly version: 1;
  readonly size: number;
  readonly chunkSize: number;
  readonly sha256: string;
  readonly chunks: readonly string[];
}

export const MANIFEST_SUFFIX = ".fanrecall-manifest.json";

export function manifestKey(dataKey: string): string {
  return dataKey + MANIFEST_SUFFIX;
}

export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

export function chunkCount(size: number, chunkSize: number): number {
  return Math.ceil(size / chunkSize);
}

export function encodeManifest(m: Manifest): Buffer {
  return Buffer.from(JSON.stringify(m), "utf8");
}

/** Parses a manifest and checks it against the sha256 the trusted stub state holds. */
export function decodeManifest(
  raw: Buffer,
  expectedSha256: string,
  expected: { size: number; chunkSize: number },
): Manifest {
  if (sha256Hex(raw) !== expectedSha256) {
    throw new RecallError("checksum-mismatch", "manifest does not match the stub's checksum");
  }
  const m = JSON.parse(raw.toString("utf8")) as Manifest;
  if (
    m.version !== 1 ||
    m.size !== expected.size ||
    m.chunkSize !== expected.chunkSize ||
    !Array.isArray(m.chunks) ||
    m.chunks.length !== chunkCount(m.size, m.chunkSize)
  ) {
    throw new RecallError("checksum-mismatch", "manifest does not describe this file");
  }
  return m;
}

/** Incrementally hashes a file, chunk by chunk, as it is read in order. */
export class ManifestBuilder {
  private readonly whole = createHash("sha256");
  private chunk = createHash("sha256");
  private inChunk = 0;
  private size = 0;
  private readonly chunks: string[] = [];

  constructor(private readonly chunkSize: number) {}

  update(data: Uint8Array): void {
    this.whole.update(data);
    let offset = 0;
    while (offset < data.length) {
      const take = Math.min(this.chunkSize - this.inChunk, data.length - offset);
      this.chunk.update(data.subarray(offset, offset + take));
      this.inChunk += take;
      offset += take;
      if (this.inChunk === this.chunkSize) this.closeChunk();
    }
    this.size += data.length;
  }

  private closeChunk(): void {
    this.chunks.push(this.chunk.digest("hex"));
    this.chunk = createHash("sha256");
    this.inChunk = 0;
  }

  finish(): Manifest {
    if (this.inChunk > 0) this.closeChunk();
    return {
      version: 1,
      size: this.size,
      chunkSize: this.chunkSize,
      sha256: this.whole.digest("hex"),
      chunks: this.chunks,
    };
  }
}
