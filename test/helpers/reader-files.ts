// test/helpers/reader-files.ts: files of random content with known sums, and the one check
// every crash and upgrade test makes of its readers: each got the right bytes or EIO, never
// anything else (a stub's zeros, a partial chunk, another file's data).
//
// Owns: nothing beyond the files it writes into the caller's directory. Holds no fds.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ChildResult } from "./child.js";

export const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

/** Writes `n` world-readable files of `size` random bytes; path -> sha256. */
export function writeRandomFiles(dir: string, prefix: string, n: number, size: number): Map<string, string> {
  const files = new Map<string, string>();
  for (let i = 0; i < n; i++) {
    const p = join(dir, `${prefix}-${i}.bin`);
    const data = randomBytes(size);
    writeFileSync(p, data);
    chmodSync(p, 0o644);
    files.set(p, sha256(data));
  }
  return files;
}

/**
 * Reader i read file i (mod the number of files): it got exactly the file's bytes, or it
 * failed with EIO where `allowEio`. Returns how many failed with EIO.
 */
export function checkReaders(results: readonly ChildResult[], files: Map<string, string>, allowEio: boolean): number {
  const paths = [...files.keys()];
  let eio = 0;
  results.forEach((r, i) => {
    const path = paths[i % paths.length];
    if (r.code === 0) assert.equal(sha256(r.stdout), files.get(path), `WRONG bytes from ${path}`);
    else {
      assert.ok(allowEio, `reader of ${path} failed: ${r.stderr}`);
      assert.match(r.stderr, /Input\/output error/, `reader of ${path} failed oddly`);
      eio++;
    }
  });
  return eio;
}
