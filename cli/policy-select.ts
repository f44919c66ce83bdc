// policy-select: the policy engine's decisions, as pure functions of what a walk saw: how full
// a filesystem is and how many bytes must go, when a file was last used, which files are
// left alone (small, excluded, pinned, not archivable), which are due to be archived, and
// the least recently used release candidates, kept in a bounded heap. The heap is the only
// memory a pass keeps per file: the oldest candidates whose allocated bytes cover what must
// be freed, no more (a max-heap on last use: a newer candidate displaces the newest kept one
// once the older ones cover the need). So a pass over millions of files holds only what it
// will release, and no catalog is kept between passes.
//
// Owns: these rules. Must not own: walking, the admin socket or any output. Holds no fds;
// imports nothing that does syscalls.
import type { FileState } from "../listener/stub-state.js";

/** What statfs(2) says of a filesystem (node's fs.statfsSync). */
export interface FsUsage {
  readonly bsize: number;
  readonly blocks: number;
  readonly bfree: number;
  readonly bavail: number;
}

/** Use in percent, as df computes it: used / (used + available to users). */
export function usedPct(fs: FsUsage): number {
  const used = fs.blocks - fs.bfree;
  const total = used + fs.bavail;
  return total <= 0 ? 0 : (100 * used) / total;
}

/** Bytes to free for use to be at or below `pct`; 0 when it is already. */
export function bytesToFree(fs: FsUsage, pct: number): number {
  const used = fs.blocks - fs.bfree;
  const total = used + fs.bavail;
  const allowed = Math.floor((total * pct) / 100);
  return Math.max(0, (used - allowed) * fs.bsize);
}

/** The last access, modification or recall, whichever is latest (ms since the epoch). */
export function lastUsedMs(t: { atimeNs: bigint; mtimeNs: bigint }, recalledAtMs: number | undefined): number {
  const atime = Number(t.atimeNs / 1_000_000n);
  const mtime = Number(t.mtimeNs / 1_000_000n);
  return Math.max(atime, mtime, recalledAtMs ?? 0);
}

/** One --exclude pattern as a regular expression over a whole path. */
export function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*" && glob[i + 1] === "*") {
      // `**/` is any number of directories (none included); `**` elsewhere is anything.
      const slash = glob[i + 2] === "/";
      re += slash ? "(?:.*/)?" : ".*";
      i += slash ? 2 : 1;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/**
 * The --exclude patterns: one starting with "/" is matched against the absolute path; any
 * other against the path relative to the DIR the pass walks. `*` and `?` stay within one
 * path component, `**` crosses them.
 */
export function excluder(globs: readonly string[]): (rel: string, abs: string) => boolean {
  const absolute = globs.filter((g) => g.startsWith("/")).map(globToRegExp);
  const relative = globs.filter((g) => !g.startsWith("/")).map(globToRegExp);
  return (rel, abs) => absolute.some((r) => r.test(abs)) || relative.some((r) => r.test(rel));
}

/** What the policy does with one file; `skip` reasons are closed. */
export type Decision =
  | { readonly kind: "archive" }
  | { readonly kind: "candidate" }
  | { readonly kind: "skip"; readonly why: "small" | "excluded" | "pinned" | "stub" | "corrupt" | "recent" };

/** What is known of a file; the costly facts are asked only when the cheap ones leave it in play. */
export interface FileFacts {
  readonly size: number;
  readonly mtimeMs: number;
  readonly excluded: () => boolean;
  /** The pin xattr. */
  readonly pinned: () => boolean;
  /** resident, archived (clean), dirty, released or partial; "corrupt" for a state that does not decode. */
  readonly state: () => FileState | "corrupt";
}

export interface PolicyRules {
  readonly minSize: number;
  readonly archiveAfterMs: number;
}

/**
 * A file's fate in a pass at `nowMs`: archived files are release candidates; resident and
 * dirty ones not modified for --archive-after are archived (and then candidates); stubs,
 * pinned, excluded and small files are never touched.
 */
export function decide(f: FileFacts, rules: PolicyRules, nowMs: number): Decision {
  if (f.size < rules.minSize) return { kind: "skip", why: "small" };
  if (f.excluded()) return { kind: "skip", why: "excluded" };
  if (f.pinned()) return { kind: "skip", why: "pinned" };
  const state = f.state();
  if (state === "corrupt") return { kind: "skip", why: "corrupt" };
  if (state === "released" || state === "partial") return { kind: "skip", why: "stub" };
  if (state === "archived") return { kind: "candidate" };
  return nowMs - f.mtimeMs >= rules.archiveAfterMs ? { kind: "archive" } : { kind: "skip", why: "recent" };
}

/** A release candidate: where it was and what it was when the walk saw it. */
export interface Candidate {
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  /** Bytes its blocks take (st_blocks * 512): what releasing it frees. */
  readonly allocated: number;
  readonly lastUsedMs: number;
}

/** Newer first (the heap's top is the first to give up): later use, then the greater path. */
function newer(a: Candidate, b: Candidate): boolean {
  return a.lastUsedMs !== b.lastUsedMs ? a.lastUsedMs > b.lastUsedMs : a.path > b.path;
}

/**
 * The least recently used candidates that together free at least `needBytes`: a max-heap on
 * last use, trimmed from the top whenever the rest still cover the need. With a need of 0 it
 * keeps nothing.
 */
export class LruCandidates {
  private readonly heap: Candidate[] = [];
  private bytes = 0;

  constructor(private readonly needBytes: number) {}

  offer(c: Candidate): void {
    if (this.needBytes <= 0 || c.allocated <= 0) return;
    const top = this.heap[0];
    // Covered already, and newer than every kept one: it would be the first to go.
    if (top !== undefined && this.bytes >= this.needBytes && newer(c, top)) return;
    this.push(c);
    for (let t = this.heap[0]; t !== undefined && this.bytes - t.allocated >= this.needBytes; t = this.heap[0])
      this.pop();
  }

  /** Bytes the kept candidates free together. */
  get coveredBytes(): number {
    return this.bytes;
  }

  /** The kept candidates, least recently used first. */
  oldestFirst(): Candidate[] {
    return [...this.heap].sort((a, b) => (newer(a, b) ? 1 : -1));
  }

  private push(c: Candidate): void {
    const h = this.heap;
    h.push(c);
    this.bytes += c.allocated;
    for (let i = h.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (!newer(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop();
    if (last === undefined) return;
    const top = h.length > 0 ? h[0] : last;
    this.bytes -= top.allocated;
    if (h.length === 0) return;
    h[0] = last;
    for (let i = 0; ;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && newer(h[l], h[m])) m = l;
      if (r < h.length && newer(h[r], h[m])) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m], h[i]];
      i = m;
    }
  }
}
