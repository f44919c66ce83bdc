// policy-pass: one pass of the policy engine over one DIR beneath a watched directory. It
// walks by fds only (safe-walk: no symlink followed, nothing opened for reading, so no
// recall and no data read): stat, then the pin and the stub state on each O_PATH fd. When
// the filesystem's use is past --release-above it first releases archived files, least
// recently used first, until use is at or below --release-to (no upload: they are archived
// already); then it archives the files not modified for --archive-after, at --archive-rate,
// checking use every few seconds and releasing at once when it passes the high watermark
// again; then, if use is still too high, it releases what it has just archived. Archive and
// release are the listener's, asked over its admin socket exactly as `fanrecall archive` and
// `fanrecall release` ask (the fd, and the absolute path as the store record's label). A
// candidate is looked up again by its path before it is released: it must be the same inode,
// still archived, unpinned, and not used since the walk saw it.
//
// Owns: the O_PATH fd of DIR and of one candidate at a time (safe-walk holds the walk's).
// Must not own: the admin connection or the watched directories' fds (the caller's), the
// rules (policy-select.ts), or how lines are printed (the reporter).
import { statfsSync } from "node:fs";
import * as native from "../native/index.js";
import type { FdStat } from "../native/index.js";
import { StubStore, fileStatus } from "../listener/stub-store.js";
import { transferTimeoutMs } from "./admin-client.js";
import type { AdminClient } from "./admin-client.js";
import { LruCandidates, bytesToFree, decide, lastUsedMs, usedPct } from "./policy-select.js";
import type { Candidate, Decision, FsUsage, PolicyRules } from "./policy-select.js";
import { walkFiles } from "./safe-walk.js";
import type { WalkProblem, WalkedFile } from "./safe-walk.js";
import type { WatchRoots } from "./watch-roots.js";

/** How often the archive walk looks at use again. */
const PRESSURE_CHECK_MS = 5_000;

export interface PassRules extends PolicyRules {
  readonly releaseAbove: number;
  readonly releaseTo: number;
  /** Bytes per second the archives of one pass may read. */
  readonly archiveRate: number;
  readonly excluded: (rel: string, abs: string) => boolean;
}

/** One action, done or (dry run) planned. */
export interface PolicyAction {
  readonly path: string;
  readonly action: "archive" | "release";
  readonly size: number;
  readonly lastUsedMs: number;
  /** Why (the audit record's reason): "archive-after" or "above-release-above". */
  readonly trigger: "archive-after" | "above-release-above";
  /** null when it was done (or planned); else the listener's or the check's refusal. */
  readonly error: string | null;
}

export interface PassSummary {
  readonly dir: string;
  readonly usedPctBefore: number;
  readonly usedPctAfter: number;
  readonly archived: number;
  readonly released: number;
  /** null when every watermark holds afterwards; else why not. */
  readonly failure: string | null;
}

export interface PassOptions {
  readonly client: AdminClient;
  readonly roots: WatchRoots;
  /** Absolute, beneath a watched directory. */
  readonly dir: string;
  readonly rules: PassRules;
  readonly dryRun: boolean;
  readonly report: (a: PolicyAction) => void;
  readonly problem: (p: WalkProblem) => void;
  /** True once the pass should stop at the next file (SIGTERM). */
  readonly stopping: () => boolean;
}

const stubs = new StubStore(null);

export class PolicyPass {
  private dirFd = -1;
  private archived = 0;
  private released = 0;
  /** Dry run: bytes the planned releases would free. */
  private plannedFree = 0;
  private nextArchiveAt = 0;
  private lastPressureCheck = Date.now();

  constructor(private readonly o: PassOptions) {}

  async run(): Promise<PassSummary> {
    this.dirFd = this.o.roots.open(this.o.dir);
    try {
      const before = usedPct(this.usage());
      const triggered = before > this.o.rules.releaseAbove;
      if (triggered && !this.o.dryRun) await this.releasePhase(false);
      await this.archivePhase();
      if (this.pressure(triggered)) await this.releasePhase(this.o.dryRun);
      const after = usedPct(this.usage());
      return {
        dir: this.o.dir,
        usedPctBefore: round(before),
        usedPctAfter: round(after),
        archived: this.archived,
        released: this.released,
        failure: this.pressure(triggered) ? this.shortfall(after, triggered) : null,
      };
    } finally {
      native.close(this.dirFd);
    }
  }

  /** statfs of DIR's filesystem (through its fd), less what a dry run's plan would free. */
  private usage(): FsUsage {
    const s = statfsSync(`/proc/self/fd/${this.dirFd}`);
    const planned = Math.floor(this.plannedFree / s.bsize);
    return { bsize: s.bsize, blocks: s.blocks, bfree: s.bfree + planned, bavail: s.bavail + planned };
  }

  /** Once past the high watermark, the pass goes down to the low one; else the high one must hold. */
  private pressure(triggered: boolean): boolean {
    const pct = usedPct(this.usage());
    return triggered ? pct > this.o.rules.releaseTo : pct > this.o.rules.releaseAbove;
  }

  private shortfall(after: number, triggered: boolean): string {
    const target = triggered ? this.o.rules.releaseTo : this.o.rules.releaseAbove;
    return (
      `use is ${round(after)}% after the pass, above ${target}%: not enough archived, unpinned, ` +
      `unexcluded files of at least --min-size were left to release (or some were in use)`
    );
  }

  /** Yields each regular file beneath DIR; problems go to the reporter as they come. */
  private *files(): Generator<WalkedFile> {
    const problems: WalkProblem[] = [];
    for (const f of walkFiles(this.o.roots, [this.o.dir], problems)) {
      for (const p of problems.splice(0)) this.o.problem(p);
      if (this.o.stopping()) return;
      yield f;
    }
    for (const p of problems.splice(0)) this.o.problem(p);
  }

  /** What the rules say of the file behind the O_PATH `fd`; the xattrs are read only when they matter. */
  private decision(path: string, fd: number, st: FdStat): { d: Decision; lastUsed: number } {
    let lastUsed = lastUsedMs(st, undefined);
    const rel = path === this.o.dir ? "" : path.slice(this.o.dir.length + 1);
    const d = decide(
      {
        size: st.size,
        mtimeMs: Number(st.mtimeNs / 1_000_000n),
        excluded: () => this.o.rules.excluded(rel, path),
        pinned: () => stubs.pinnedOPath(fd),
        state: () => {
          const stub = stubs.readOPath(fd);
          if (stub !== null && stub !== "corrupt") lastUsed = lastUsedMs(st, stub.recalledAtMs);
          return fileStatus(st, stub, () => 0).state;
        },
      },
      this.o.rules,
      Date.now(),
    );
    return { d, lastUsed };
  }

  /** Archives what is due, rate-limited; releases at once whenever use passes the high watermark. */
  private async archivePhase(): Promise<void> {
    for (const f of this.files()) {
      const { d, lastUsed } = this.decision(f.path, f.fd, f.st);
      if (d.kind !== "archive") continue;
      if (!this.o.dryRun) await this.checkPressure();
      await this.archiveOne(f, lastUsed);
    }
  }

  private async checkPressure(): Promise<void> {
    if (Date.now() - this.lastPressureCheck < PRESSURE_CHECK_MS) return;
    this.lastPressureCheck = Date.now();
    if (this.pressure(false)) await this.releasePhase(false);
  }

  private async archiveOne(f: WalkedFile, lastUsed: number): Promise<void> {
    const action = {
      path: f.path,
      action: "archive",
      size: f.st.size,
      lastUsedMs: lastUsed,
      trigger: "archive-after" as const,
    };
    if (this.o.dryRun) {
      this.archived++;
      return this.o.report({ ...action, action: "archive", error: null });
    }
    // Rate: each archive waits until the bytes of the ones before it have had their time.
    const wait = this.nextArchiveAt - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    this.nextArchiveAt = Math.max(Date.now(), this.nextArchiveAt) + (f.st.size / this.o.rules.archiveRate) * 1000;
    const error = await this.ask("archive", f.fd, f.st.size, f.path);
    if (error === null) this.archived++;
    this.o.report({ ...action, action: "archive", error });
  }

  /**
   * Releases the least recently used candidates until use is at or below --release-to. A dry
   * run counts files it would archive (`withDue`) as candidates too, and plans instead.
   */
  private async releasePhase(withDue: boolean): Promise<void> {
    const need = bytesToFree(this.usage(), this.o.rules.releaseTo);
    const lru = new LruCandidates(need);
    for (const f of this.files()) {
      const { d, lastUsed } = this.decision(f.path, f.fd, f.st);
      if (d.kind === "candidate" || (withDue && d.kind === "archive")) lru.offer(candidateOf(f, lastUsed));
    }
    for (const c of lru.oldestFirst()) {
      if (this.o.stopping() || usedPct(this.usage()) <= this.o.rules.releaseTo) return;
      await this.releaseOne(c);
    }
  }

  /** Releases one candidate, found again by its path: the same inode, still a candidate, unused since. */
  private async releaseOne(c: Candidate): Promise<void> {
    const action = { path: c.path, action: "release" as const, size: c.size, lastUsedMs: c.lastUsedMs };
    const trigger = "above-release-above";
    if (this.o.dryRun) {
      this.plannedFree += c.allocated;
      this.released++;
      return this.o.report({ ...action, trigger, error: null });
    }
    let fd: number;
    try {
      fd = this.o.roots.open(c.path);
    } catch (err: unknown) {
      return this.o.report({ ...action, trigger, error: `gone since the walk: ${errorText(err)}` });
    }
    try {
      const st = native.fstat(fd);
      const now = this.decision(c.path, fd, st);
      const same = st.dev === c.dev && st.ino === c.ino && now.d.kind === "candidate";
      if (!same || now.lastUsed > c.lastUsedMs)
        return this.o.report({ ...action, trigger, error: "changed or used since the walk; left alone" });
      const error = await this.ask("release", fd, st.size, c.path);
      if (error === null) this.released++;
      this.o.report({ ...action, trigger, error });
    } finally {
      native.close(fd);
    }
  }

  /** One admin request, as `fanrecall archive|release` sends it; null when done, else why not. */
  private async ask(op: "archive" | "release", fd: number, size: number, path: string): Promise<string | null> {
    try {
      const reply = await this.o.client.requestFd(op, fd, transferTimeoutMs(size), path);
      return reply.ok ? null : `${reply.error ?? "failed"} (${reply.reason ?? "error"})`;
    } catch (err: unknown) {
      return errorText(err);
    }
  }
}

function candidateOf(f: WalkedFile, lastUsed: number): Candidate {
  const { st } = f;
  return { path: f.path, dev: st.dev, ino: st.ino, size: st.size, allocated: st.blocks * 512, lastUsedMs: lastUsed };
}

function round(pct: number): number {
  return Math.round(pct * 100) / 100;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
