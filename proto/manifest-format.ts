// manifest-format: the manifest object as stored beside each archived file (the per-block
// sha256 list every recalled byte is checked against), shared by both sides: the recall
// service builds and reads it, the root listener reads it to check recalled bytes itself.
// Decoding treats the bytes as hostile: they are hashed and compared with the sha256 of the
// trusted stub state before they are parsed, and every field is checked after.
//
// Version 2 (written now) has a sha256 per block of BLOCK_SIZE (256 KiB) inside each chunk;
// version 1 (older archives) one per chunk. Decoding gives one shape for both.
//
// Owns: the format and its checks. Must not own: fetching, storing, files. Holds no fds.
import { createHash } from "node:crypto";

/** The verification granularity of new manifests (when it divides the chunk size). */
export const BLOCK_SIZE = 256 * 1024;
/** Manifests larger than this are refused (about 1M blocks: a 256 GiB file at 256 KiB). */
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;
/** A file of one chunk up to this size is checked against its whole-content sha256 alone. */
export const WHOLE_CONTENT_MAX_BYTES = 4 * 1024 * 1024;
export const MANIFEST_SUFFIX = ".fanrecall-manifest.json";

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

/** Why a manifest was refused: its bytes are not the ones the stub state names, or it does not describe the file. */
export class ManifestFormatError extends Error {
  override readonly name = "ManifestFormatError";
}

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

/**
 * Whether a file is checked against its whole-content sha256 (one chunk, up to 4 MiB: no
 * manifest is fetched) rather than its manifest's block hashes. Both sides use this rule.
 */
export function checkedByContentHash(size: number, chunkSize: number): boolean {
  return size <= chunkSize && size <= WHOLE_CONTENT_MAX_BYTES;
}

const HEX64 = /^[0-9a-f]{64}$/;
const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/**
 * Checks `raw` against the sha256 the trusted stub state holds, then parses it (version 1 or
 * 2) and checks that it describes a file of `expected` size, chunk size and content hash.
 */
export function decodeManifest(
  raw: Uint8Array,
  expectedSha256: string,
  expected: { size: number; chunkSize: number; contentSha256?: string },
): Manifest {
  if (raw.length > MAX_MANIFEST_BYTES) throw new ManifestFormatError("manifest too large");
  if (sha256Hex(raw) !== expectedSha256) {
    throw new ManifestFormatError("manifest does not match the stub's checksum");
  }
  let d: unknown;
  try {
    d = JSON.parse(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("utf8"));
  } catch {
    throw new ManifestFormatError("manifest is not JSON");
  }
  if (typeof d !== "object" || d === null) throw new ManifestFormatError("manifest is not an object");
  const o = d as Record<string, unknown>;
  const blocks = o.version === 1 ? o.chunks : o.version === 2 ? o.blocks : undefined;
  const blockSize = o.version === 1 ? o.chunkSize : o.blockSize;
  if (
    !isCount(o.size) ||
    !isCount(o.chunkSize) ||
    !isCount(blockSize) ||
    typeof o.sha256 !== "string" ||
    o.size !== expected.size ||
    o.chunkSize !== expected.chunkSize ||
    blockSize <= 0 ||
    o.chunkSize % blockSize !== 0 ||
    !HEX64.test(o.sha256) ||
    (expected.contentSha256 !== undefined && o.sha256 !== expected.contentSha256) ||
    !Array.isArray(blocks) ||
    blocks.length !== chunkCount(o.size, blockSize) ||
    !blocks.every((h) => typeof h === "string" && HEX64.test(h))
  ) {
    throw new ManifestFormatError("manifest does not describe this file");
  }
  return {
    version: o.version as 1 | 2,
    size: o.size,
    chunkSize: o.chunkSize,
    blockSize,
    sha256: o.sha256,
    blocks: blocks as string[],
  };
}
