// manifest: the per-block sha256 list that lets every ranged recall be verified before a byte
// is written. Stored as a small JSON object beside the data object; its own sha256 lives in
// the trusted stub state, so a forged or corrupted manifest is refused.
//
// Version 2 (written now) records a sha256 per block of BLOCK_SIZE (256 KiB) inside each
// chunk, so the first bytes of a chunk can be verified and written before the rest of it has
// arrived. Version 1 (older archives) records one sha256 per chunk; it still decodes, with
// the block being the chunk. Decoding returns one shape for both: `blockSize` and `blocks`.
//
// Owns: building, encoding, decoding and checking manifests. Must not own: fetching or
// storing them. Holds no fds.
import { createHash } from "node:crypto";
import { RecallError } from "./errors.js";

/** The verification granularity of new manifests (when it divides the chunk size). */
export const BLOCK_SIZE = 256 * 1024;

/** A manifest as stored (either version). */
export type ManifestDocument =
  | {
      readonly version: 1;
      readonly size: number;
      readonly chunkSize: number;
      readonly sha256: string;
      readonly chunks: readonly string[];
    }
  | {
      readonly version: 2;
      readonly size: number;
      readonly chunkSize: number;
      readonly blockSize: number;
      readonly sha256: string;
      readonly blocks: readonly string[];
    };

/** A decoded manifest: block i is [i * blockSize, min(size, (i + 1) * blockSize)). */
export interface Manifest {
  readonly version: 1 | 2;
  readonly size: number;
  readonly chunkSize: number;
  /** Divides chunkSize (equal to it for version 1). */
  readonly blockSize: number;
  /** sha256 of the whole content. */
  readonly sha256: string;
  readonly blocks: readonly string[];
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

/** The block size a version 2 manifest uses for a chunk size. */
export function blockSizeFor(chunkSize: number): number {
  return chunkSize > BLOCK_SIZE && chunkSize % BLOCK_SIZE === 0 ? BLOCK_SIZE : chunkSize;
}

export function encodeManifest(m: ManifestDocument): Buffer {
  return Buffer.from(JSON.stringify(m), "utf8");
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Parses a manifest (version 1 or 2) and checks it against the sha256 the trusted stub state holds. */
export function decodeManifest(
  raw: Buffer,
  expectedSha256: string,
  expected: { size: number; chunkSize: number },
): Manifest {
  if (sha256Hex(raw) !== expectedSha256) {
    throw new RecallError("checksum-mismatch", "manifest does not match the stub's checksum");
  }
  const d = JSON.parse(raw.toString("utf8")) as ManifestDocument;
  const m: Manifest | null =
    d.version === 1
      ? { version: 1, size: d.size, chunkSize: d.chunkSize, blockSize: d.chunkSize, sha256: d.sha256, blocks: d.chunks }
      : d.version === 2
        ? {
            version: 2,
            size: d.size,
            chunkSize: d.chunkSize,
            blockSize: d.blockSize,
            sha256: d.sha256,
            blocks: d.blocks,
          }
        : null;
  if (
    m === null ||
    m.size !== expected.size ||
    m.chunkSize !== expected.chunkSize ||
    !Number.isSafeInteger(m.blockSize) ||
    m.blockSize <= 0 ||
    m.chunkSize % m.blockSize !== 0 ||
    !Array.isArray(m.blocks) ||
    m.blocks.length !== chunkCount(m.size, m.blockSize) ||
    !m.blocks.every((h) => typeof h === "string" && HEX64.test(h))
  ) {
    throw new RecallError("checksum-mismatch", "manifest does not describe this file");
  }
  return m;
}

/** Incrementally hashes a file, block by block, as it is read in order (version 2). */
export class ManifestBuilder {
  private readonly whole = createHash("sha256");
  private block = createHash("sha256");
  private inBlock = 0;
  private size = 0;
  private readonly blocks: string[] = [];
  readonly blockSize: number;

  constructor(private readonly chunkSize: number) {
    this.blockSize = blockSizeFor(chunkSize);
  }

  update(data: Uint8Array): void {
    this.whole.update(data);
    let offset = 0;
    while (offset < data.length) {
      const take = Math.min(this.blockSize - this.inBlock, data.length - offset);
      this.block.update(data.subarray(offset, offset + take));
      this.inBlock += take;
      offset += take;
      if (this.inBlock === this.blockSize) this.closeBlock();
    }
    this.size += data.length;
  }

  private closeBlock(): void {
    this.blocks.push(this.block.digest("hex"));
    this.block = createHash("sha256");
    this.inBlock = 0;
  }

  finish(): ManifestDocument & { version: 2 } {
    if (this.inBlock > 0) this.closeBlock();
    return {
      version: 2,
      size: this.size,
      chunkSize: this.chunkSize,
      blockSize: this.blockSize,
      sha256: this.whole.digest("hex"),
      blocks: this.blocks,
    };
  }
}
