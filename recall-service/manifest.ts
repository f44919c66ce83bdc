// manifest: building and encoding the per-block sha256 list that lets every ranged recall be
// verified before a byte is written, and reading it back with the recall service's error
// reasons. The format itself (and its hostile-input checks) is proto/manifest-format.ts,
// shared with the listener, which checks recalled bytes against the same manifest.
//
// Owns: building and encoding manifests. Must not own: fetching or storing them. Holds no fds.
import { createHash } from "node:crypto";
import { ManifestFormatError, blockSizeFor, decodeManifest as decodeFormat } from "../proto/manifest-format.js";
import type { Manifest, ManifestDocument } from "../proto/manifest-format.js";
import { RecallError } from "./errors.js";

export {
  BLOCK_SIZE,
  MANIFEST_SUFFIX,
  blockSizeFor,
  chunkCount,
  manifestKey,
  sha256Hex,
} from "../proto/manifest-format.js";
export type { Manifest, ManifestDocument } from "../proto/manifest-format.js";

export function encodeManifest(m: ManifestDocument): Buffer {
  return Buffer.from(JSON.stringify(m), "utf8");
}

/** Parses a manifest (version 1 or 2) and checks it against the sha256 the trusted stub state holds. */
export function decodeManifest(
  raw: Buffer,
  expectedSha256: string,
  expected: { size: number; chunkSize: number },
): Manifest {
  try {
    return decodeFormat(raw, expectedSha256, expected);
  } catch (err: unknown) {
    if (err instanceof ManifestFormatError) throw new RecallError("checksum-mismatch", err.message);
    throw err;
  }
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
