// content-check: the listener's own check of recalled bytes, before it allows an access. The
// recall service writes through the fds it is handed and may be compromised; so no access is
// allowed to bytes of a stub that the listener has not hashed itself and found equal to the
// trusted stub state: the whole-content sha256 for a file of one chunk up to 4 MiB, else the
// block hashes of the file's manifest, whose bytes the recall service hands over and which
// are used only when their sha256 is the one the stub state holds (proto/manifest-format.ts).
// Blocks found equal are remembered per inode while the listener runs (so each is hashed
// once); a release forgets them. Before a release, it vouches for the archive: the file's
// sha256 and block hashes, computed here, must be the ones the archive reported and the
// manifest read back from the store holds.
//
// Owns: the checked manifests (by sha256, bounded in bytes) and the per-inode sets of checked
// blocks (bounded in inodes). Reads through an fd the caller holds (never opens, writes or
// closes one). Must not own: stub state, verdicts, punching (the dispatcher decides).
import { read } from "node:fs";
import { createHash } from "node:crypto";
import type { Hash } from "node:crypto";
import { promisify } from "node:util";
import * as native from "../native/index.js";
import { ManifestFormatError, checkedByContentHash, decodeManifest } from "../proto/manifest-format.js";
import type { Manifest } from "../proto/manifest-format.js";
import { RecentMap } from "./recent-map.js";
import type { StubState } from "./stub-state.js";

const readAsync = promisify(read);
const READ_BYTES = 1024 * 1024;
/** Binary block hashes kept at most (32 bytes a block: 64 MiB covers 512 TiB of 256 KiB blocks). */
const MAX_MANIFEST_CACHE_BYTES = 64 * 1024 * 1024;
/** Inodes whose checked blocks are remembered (older ones are hashed again when read). */
const MAX_TRACKED_INODES = 4096;
/** Read buffers kept between checks (checks of different inodes run at once). */
const MAX_SPARE_BUFFERS = 4;
/** How often blocks are looked for while a recall runs (checkWhile). */
const EARLY_CHECK_POLL_MS = 3;

interface BlockHashes {
  readonly blockSize: number;
  /** 32 bytes per block, block i at [32 i, 32 i + 32). */
  readonly hashes: Buffer;
}

/** Why a range could not be vouched for. */
export type CheckFailure = "hole" | "mismatch" | "no-manifest";

export type CheckResult =
  | { readonly ok: true }
  | {
      readonly ok: false;
      readonly why: CheckFailure;
      /** Blocks whose bytes are not the file's, [start, end) each: to be punched back to holes. */
      readonly bad: ReadonlyArray<readonly [number, number]>;
    };

interface Checked {
  readonly manifestSha256: string;
  readonly bits: Uint8Array;
}

export class ContentCheck {
  private readonly manifests = new Map<string, BlockHashes>();
  private manifestBytes = 0;
  private readonly checked = new RecentMap<string, Checked>(MAX_TRACKED_INODES);
  /** Read buffers of finished checks, kept for the next ones (no fresh 1 MiB per check). */
  private readonly spare: Buffer[] = [];

  /** `enabled` false only to measure what the check costs (bench): a range passes when its bytes are there. */
  constructor(private readonly enabled = true) {}

  /** Whether a recall of this stub must bring the manifest's bytes (the listener has none). */
  needsManifest(stub: StubState): boolean {
    return this.enabled && this.hashesOf(stub) === null;
  }

  /**
   * Takes manifest bytes a reply carried. They are hashed first, parsed only when the hash is
   * the stub state's, and kept only when they describe this file. False when refused.
   */
  accept(stub: StubState, raw: Uint8Array): boolean {
    if (this.manifests.has(stub.manifestSha256)) return true;
    const m = decodeFor(stub, raw);
    if (m instanceof ManifestFormatError) return false;
    this.keep(stub.manifestSha256, m);
    return true;
  }

  /** Keeps a checked manifest's block hashes (binary), the oldest going first past the byte bound. */
  private keep(manifestSha256: string, { blockSize, blocks }: Manifest): void {
    const hashes = Buffer.alloc(blocks.length * 32);
    blocks.forEach((h, i) => hashes.write(h, i * 32, "hex"));
    while (this.manifestBytes + hashes.length > MAX_MANIFEST_CACHE_BYTES && this.manifests.size > 0) {
      const [oldest, old] = this.manifests.entries().next().value as [string, BlockHashes];
      this.manifests.delete(oldest);
      this.manifestBytes -= old.hashes.length;
    }
    this.manifests.set(manifestSha256, { blockSize, hashes });
    this.manifestBytes += hashes.length;
  }

  /**
   * Checks every block overlapping [from, to) of the file behind `fd` (the inode `key`) against
   * the stub's hashes. Blocks checked before are skipped; a block with a hole fails ("hole"),
   * as does one whose bytes differ ("mismatch", listed in `bad`).
   */
  async check(fd: number, key: string, stub: StubState, from: number, to: number): Promise<CheckResult> {
    const end = Math.min(to, stub.size);
    if (end <= from) return { ok: true };
    if (!this.enabled) {
      // Unchecked (bench only): the bytes need only be there.
      const hole = native.seekHole(fd, from);
      return hole === -1 || hole >= end ? { ok: true } : { ok: false, why: "hole", bad: [] };
    }
    const hashes = this.hashesOf(stub);
    if (hashes === null) return { ok: false, why: "no-manifest", bad: [] };
    const { blockSize } = hashes;
    const bits = this.bitsOf(key, stub, hashes);
    const isChecked = (i: number) => (bits[i >> 3] & (1 << (i & 7))) !== 0;
    const bad: Array<[number, number]> = [];
    let hole = false;
    // Bytes below this hold data (the last SEEK_HOLE said so): one lseek covers a run of
    // blocks, not one per block (ext4 takes the inode lock for it, behind any running write).
    let dataUntil = -1;
    const buf = this.takeBuffer();
    try {
      for (let i = Math.floor(from / blockSize); i * blockSize < end;) {
        if (isChecked(i)) {
          i++;
          continue;
        }
        const start = i * blockSize;
        const stop = Math.min(stub.size, start + blockSize);
        const nextHole = stop <= dataUntil ? dataUntil : native.seekHole(fd, start);
        if (nextHole !== -1) dataUntil = nextHole;
        if (nextHole !== -1 && nextHole < stop) {
          hole = true;
          // Jump over the hole (one lseek, not one per block): the next block that can be whole
          // is the one holding the next data; none when the rest is a hole.
          const nextData = native.seekData(fd, nextHole);
          if (nextData === -1) break;
          i = Math.max(i + 1, Math.floor(nextData / blockSize));
          continue;
        }
        // This block and the unchecked present ones after it, read together (one read of the
        // thread pool per READ_BYTES, not one per block).
        let j = i + 1;
        while (
          j * blockSize < end &&
          (j + 1 - i) * blockSize <= READ_BYTES &&
          !isChecked(j) &&
          Math.min(stub.size, (j + 1) * blockSize) <= dataUntil
        )
          j++;
        bad.push(...(await judge(fd, stub.size, hashes, bits, i, j, buf)));
        i = j;
      }
    } finally {
      this.giveBack(buf);
    }
    if (bad.length > 0) return { ok: false, why: "mismatch", bad };
    if (hole) return { ok: false, why: "hole", bad };
    return { ok: true };
  }

  /**
   * While `pending` (a recall) runs, checks the blocks of [from, to) that are wholly present
   * already, so that hashing overlaps the store's transfer and the check after the reply finds
   * them done. It decides nothing: a block found different here is only left unchecked (it may
   * have been read while being written), for that later check to hash again and refuse.
   */
  async checkWhile(
    fd: number,
    key: string,
    stub: StubState,
    from: number,
    to: number,
    pending: Promise<unknown>,
  ): Promise<void> {
    if (!this.enabled || this.hashesOf(stub) === null) return;
    let settled = false;
    const over = pending.then(
      () => (settled = true),
      () => (settled = true),
    );
    while (!settled) {
      const r = await this.check(fd, key, stub, from, to);
      // Done, or bytes that differ: no hashing them again and again while a recall service stalls.
      if (r.ok || r.why !== "hole") return;
      await Promise.race([over, new Promise((resolve) => setTimeout(resolve, EARLY_CHECK_POLL_MS))]);
    }
  }

  /**
   * Whether the archive described by `stub` (as the recall service reported it) and the
   * manifest bytes read back from the store are the file behind `fd`, hashed here: the
   * whole-content sha256 and every block hash. On success the manifest is kept for recalls.
   */
  async vouch(fd: number, stub: StubState, raw: Uint8Array): Promise<{ ok: true } | { ok: false; why: string }> {
    const manifest = decodeFor(stub, raw);
    if (manifest instanceof ManifestFormatError) return { ok: false, why: manifest.message };
    const whole = createHash("sha256");
    const buf = this.takeBuffer();
    let digests: Buffer[];
    try {
      digests = await hashBlocks(fd, 0, stub.size, manifest.blockSize, buf, whole);
    } finally {
      this.giveBack(buf);
    }
    for (let i = 0; i < manifest.blocks.length; i++) {
      if (i >= digests.length) return { ok: false, why: `the file ends inside block ${i}` };
      if (digests[i].toString("hex") !== manifest.blocks[i])
        return { ok: false, why: `block ${i} differs from the manifest` };
    }
    if (whole.digest("hex") !== stub.contentSha256) return { ok: false, why: "the file's sha256 is not the archive's" };
    this.keep(stub.manifestSha256, manifest);
    return { ok: true };
  }

  private takeBuffer(): Buffer {
    return this.spare.pop() ?? Buffer.allocUnsafeSlow(READ_BYTES);
  }

  private giveBack(buf: Buffer): void {
    if (this.spare.length < MAX_SPARE_BUFFERS) this.spare.push(buf);
  }

  /** Forgets what was checked of an inode (its blocks are punched, or it is a new file). */
  forget(key: string): void {
    this.checked.delete(key);
  }

  private hashesOf(stub: StubState): BlockHashes | null {
    if (checkedByContentHash(stub.size, stub.chunkSize)) {
      return { blockSize: Math.max(stub.size, 1), hashes: Buffer.from(stub.contentSha256, "hex") };
    }
    const m = this.manifests.get(stub.manifestSha256);
    if (m) {
      // Most recently used last: eviction takes the oldest first.
      this.manifests.delete(stub.manifestSha256);
      this.manifests.set(stub.manifestSha256, m);
    }
    return m ?? null;
  }

  private bitsOf(key: string, stub: StubState, hashes: BlockHashes): Uint8Array {
    const have = this.checked.get(key);
    const blocks = hashes.hashes.length / 32;
    const entry =
      have && have.manifestSha256 === stub.manifestSha256 && have.bits.length * 8 >= blocks
        ? have
        : { manifestSha256: stub.manifestSha256, bits: new Uint8Array(Math.ceil(blocks / 8)) };
    this.checked.set(key, entry);
    return entry.bits;
  }
}

/** The manifest `raw` checked against `stub` (its sha256, size, chunk size, content hash), or why not. */
function decodeFor(stub: StubState, raw: Uint8Array): Manifest | ManifestFormatError {
  try {
    return decodeManifest(raw, stub.manifestSha256, {
      size: stub.size,
      chunkSize: stub.chunkSize,
      contentSha256: stub.contentSha256,
    });
  } catch (err: unknown) {
    if (err instanceof ManifestFormatError) return err;
    throw err;
  }
}

/**
 * Hashes blocks [i, j) of the file behind `fd` (of `size` bytes) and compares each with its
 * hash: equal ones are marked in `bits`, the others returned as [start, end) ranges.
 */
async function judge(
  fd: number,
  size: number,
  { blockSize, hashes }: BlockHashes,
  bits: Uint8Array,
  i: number,
  j: number,
  buf: Buffer,
): Promise<Array<[number, number]>> {
  const digests = await hashBlocks(fd, i * blockSize, Math.min(size, j * blockSize), blockSize, buf);
  const bad: Array<[number, number]> = [];
  for (let k = i; k < j; k++) {
    if (digests[k - i]?.equals(hashes.subarray(k * 32, k * 32 + 32))) bits[k >> 3] |= 1 << (k & 7);
    else bad.push([k * blockSize, Math.min(size, (k + 1) * blockSize)]);
  }
  return bad;
}

/**
 * The sha256 of each `blockSize` block of [start, stop) of `fd` (the last may be shorter),
 * read on the thread pool in pieces of `buf` (each piece also fed to `whole`, when given). A
 * block the file ends inside is left out.
 */
async function hashBlocks(
  fd: number,
  start: number,
  stop: number,
  blockSize: number,
  buf: Buffer,
  whole?: Hash,
): Promise<Buffer[]> {
  const digests: Buffer[] = [];
  let h = createHash("sha256");
  let blockEnd = Math.min(stop, start + blockSize);
  for (let pos = start; pos < stop;) {
    const { bytesRead } = await readAsync(fd, buf, 0, Math.min(buf.length, stop - pos), pos);
    if (bytesRead <= 0) break;
    whole?.update(buf.subarray(0, bytesRead));
    for (let at = 0; at < bytesRead;) {
      const take = Math.min(bytesRead - at, blockEnd - (pos + at));
      h.update(buf.subarray(at, at + take));
      at += take;
      if (pos + at === blockEnd) {
        digests.push(h.digest());
        h = createHash("sha256");
        blockEnd = Math.min(stop, blockEnd + blockSize);
      }
    }
    pos += bytesRead;
  }
  return digests;
}
