// bench/context.ts: what one bench run shares between scenarios: the options, the C helpers,
// one Swift all-in-one and one s3rver (each started on first use), the released 256 MiB stub
// of scenarios 1-4 (one per store), fanrecall instances, and the cleanup stack that undoes all
// of it.
//
// Owns: every resource a scenario registers with defer(): Swift, s3rver, loop filesystems, fanrecall
// instances, FUSE mounts, temp dirs. cleanup() runs them last-in first-out, each bounded, and
// is called in main's finally and on SIGINT/SIGTERM.
// Must not: measure anything (scenarios do) or change fanrecall's code or config files.
// Fds: none held between calls.
import { createHash, randomBytes } from "node:crypto";
import { closeSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { Ext4 } from "../test/helpers/loop-fs.js";
import { makeExt4 } from "../test/helpers/loop-fs.js";
import type { ObjectServer } from "../test/helpers/object-server.js";
import { makeBucket, startS3rver, startSwift } from "../test/helpers/object-server.js";
import type { FanrecallInstance } from "../test/helpers/fanrecall-instance.js";
import { startFanrecall } from "../test/helpers/fanrecall-instance.js";
import type { CTools } from "./measure.js";
import { MiB, nowMs, readAt, readSeq } from "./measure.js";
import type { Row } from "./report.js";
import type { SavedStub } from "./stubs.js";
import { archiveAndRelease, restub, saveStub } from "./stubs.js";

export interface BenchOptions {
  readonly quick: boolean;
  readonly only: ReadonlySet<number> | null;
  readonly out: string;
  readonly verbose: boolean;
}

/** The released big file of scenarios 1-4, its never-archived twin, and its object. */
export interface BigStub {
  readonly fs: Ext4;
  readonly path: string;
  readonly plainPath: string;
  readonly size: number;
  /** The store that holds the object (the run's Swift, or its s3rver). */
  readonly server: ObjectServer;
  readonly bucket: string;
  readonly key: string;
  readonly saved: SavedStub;
  /** A 64 KiB stub recalled right after each instance starts, so measurements see a warm daemon. */
  readonly warm: SavedStub;
  /** reader.c hashes of the original content: whole file, 4 KiB at 0, 4 KiB at RANDOM_OFFSET. */
  readonly hashes: { readonly full: string; readonly first: string; readonly random: string };
}

/** The object stores a run can start: Swift all-in-one (every scenario) and s3rver (scenario 1). */
export type StoreKind = "swift" | "s3rver";

/** Where scenario 3 reads 4 KiB of the big stub. */
export const RANDOM_OFFSET = 200 * MiB;

export interface ScenarioOutcome {
  readonly reps: number;
  readonly rows: readonly Row[];
  readonly details?: Record<string, unknown>;
}

export interface Scenario {
  readonly id: number;
  readonly title: string;
  run(ctx: BenchContext): Promise<ScenarioOutcome>;
}

const CLEANUP_STEP_MS = 60_000;

/** Writes `size` random bytes to a new 0644 file; returns its sha256. */
export function writeRandomFile(path: string, size: number): string {
  const fd = openSync(path, "w", 0o644);
  const hash = createHash("sha256");
  try {
    for (let off = 0; off < size; off += 8 * MiB) {
      const b = randomBytes(Math.min(8 * MiB, size - off));
      hash.update(b);
      writeSync(fd, b);
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}

export class BenchContext {
  private readonly cleanups: Array<{ what: string; fn: () => Promise<void> }> = [];
  private readonly servers = new Map<StoreKind, Promise<ObjectServer>>();
  private readonly bigs = new Map<StoreKind, Promise<BigStub>>();
  private buckets = 0;
  private readonly t0 = nowMs();

  constructor(
    readonly opts: BenchOptions,
    readonly tools: CTools,
  ) {}

  /** Reps per scenario: `full` by default, `quick` with --quick. */
  reps(full: number, quick: number): number {
    return this.opts.quick ? quick : full;
  }

  log(msg: string): void {
    process.stderr.write(`[bench ${((nowMs() - this.t0) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);
  }

  /** Registers an undo step; returns a function that runs it now (once) instead of at the end. */
  defer(what: string, fn: () => Promise<void>): () => Promise<void> {
    let done = false;
    const entry = {
      what,
      fn: async () => {
        if (done) return;
        done = true;
        await fn();
      },
    };
    this.cleanups.push(entry);
    return async () => {
      const i = this.cleanups.indexOf(entry);
      if (i >= 0) this.cleanups.splice(i, 1);
      await entry.fn();
    };
  }

  async cleanup(): Promise<void> {
    while (this.cleanups.length > 0) {
      const step = this.cleanups.pop()!;
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          step.fn(),
          new Promise<void>((_, reject) => {
            timer = setTimeout(() => reject(new Error("timed out")), CLEANUP_STEP_MS);
          }),
        ]);
      } catch (err: unknown) {
        this.log(`cleanup of ${step.what} failed: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        clearTimeout(timer);
      }
    }
  }

  swift(): Promise<ObjectServer> {
    return this.store("swift");
  }

  /** The run's store of that kind, started on first use and stopped at cleanup. */
  store(kind: StoreKind): Promise<ObjectServer> {
    let p = this.servers.get(kind);
    if (p === undefined) {
      p = (async () => {
        const t = nowMs();
        const server = kind === "swift" ? await startSwift() : await startS3rver();
        this.defer(kind, () => server.stop());
        this.log(`${kind} up on ${server.endpoint} in ${((nowMs() - t) / 1000).toFixed(1)} s`);
        return server;
      })();
      this.servers.set(kind, p);
    }
    return p;
  }

  /** A new bucket on the run's Swift (or on `server`). */
  async bucket(label: string, server?: ObjectServer): Promise<string> {
    const name = `bench-${label}-${++this.buckets}`;
    await makeBucket(server ?? (await this.swift()), name);
    return name;
  }

  /** A loop-mounted ext4 of sizeMiB, unmounted at cleanup (or earlier via the returned fs.cleanup). */
  async ext4(sizeMiB: number): Promise<Ext4> {
    const fs = await makeExt4(sizeMiB);
    this.defer(`ext4 ${fs.dir}`, () => fs.cleanup());
    return fs;
  }

  /** Starts fanrecall against the run's Swift (or `store`); stopped at cleanup or by the returned stop(). */
  async fanrecall(
    watch: string,
    bucket: string,
    extraArgs: readonly string[] = [],
    store?: ObjectServer,
  ): Promise<FanrecallInstance> {
    const server = store ?? (await this.swift());
    const fr = await startFanrecall({ watch: [watch], server, bucket, extraArgs });
    const stop = this.defer(`fanrecall on ${watch}`, async () => {
      const code = await fr.stop();
      if (code !== 0 && this.opts.verbose) this.log(`fanrecall exited ${code}:\n${fr.output().slice(-3000)}`);
    });
    return { ...fr, stop: async () => (await stop(), fr.child.exitCode) };
  }

  /** Runs fn with a fresh fanrecall instance, always stopping it after. */
  async withFanrecall<T>(
    watch: string,
    bucket: string,
    extraArgs: readonly string[],
    fn: (fr: FanrecallInstance) => Promise<T>,
    store?: ObjectServer,
  ): Promise<T> {
    const fr = await this.fanrecall(watch, bucket, extraArgs, store);
    try {
      return await fn(fr);
    } finally {
      await fr.stop();
    }
  }

  /** The released 256 MiB stub (and its never-archived twin) shared by scenarios 1-4, archived to `kind`. */
  bigStub(kind: StoreKind = "swift"): Promise<BigStub> {
    let p = this.bigs.get(kind);
    if (p === undefined) {
      p = this.makeBigStub(kind);
      this.bigs.set(kind, p);
    }
    return p;
  }

  private async makeBigStub(kind: StoreKind): Promise<BigStub> {
    const size = 256 * MiB;
    const fs = await this.ext4(1024);
    const server = await this.store(kind);
    const bucket = await this.bucket("big", server);
    const path = join(fs.dir, "big.bin");
    const plainPath = join(fs.dir, "plain.bin");
    const warmPath = join(fs.dir, "warm.bin");
    writeRandomFile(path, size);
    writeRandomFile(warmPath, 64 * 1024);
    writeRandomFile(plainPath, size);
    const reader = this.tools.reader;
    const hashes = {
      full: (await readSeq(reader, path, { bs: MiB, hash: true, timeoutMs: 60_000 })).hash,
      first: (await readAt(reader, path, 0, 4096, 10_000)).hash,
      random: (await readAt(reader, path, RANDOM_OFFSET, 4096, 10_000)).hash,
    };
    const t = nowMs();
    const status = await this.withFanrecall(
      fs.dir,
      bucket,
      [],
      (fr) => archiveAndRelease(fr, [path, warmPath], 300_000),
      server,
    );
    const key = status.find((s) => s.path === path)?.object?.key;
    if (!key) throw new Error("no object key after release");
    this.log(`256 MiB stub archived to ${kind} and released in ${((nowMs() - t) / 1000).toFixed(1)} s (key ${key})`);
    return { fs, path, plainPath, size, server, bucket, key, saved: saveStub(path), warm: saveStub(warmPath), hashes };
  }

  /**
   * Makes the big stub (and the warm-up stub) released again, starts a fresh instance, recalls
   * the warm-up stub through it (gRPC channel, fd channel and store connection up, code warm:
   * a daemon that has been running, as the peers' mounts have after their stat), runs fn, and
   * stops the instance. The big file's manifest and chunks are never cached at fn's start.
   */
  async withBigStub<T>(
    big: BigStub,
    extraArgs: readonly string[],
    fn: (fr: FanrecallInstance) => Promise<T>,
  ): Promise<T> {
    return this.withStubs(big.fs.dir, big.bucket, [big.saved], big.warm, extraArgs, fn, big.server);
  }

  /**
   * withBigStub for any released files: makes `saved` and `warm` released stubs again, starts
   * a fresh instance watching `watch` against `bucket` (on the run's Swift, or `store`),
   * recalls `warm` through it, runs fn, and stops the instance.
   */
  async withStubs<T>(
    watch: string,
    bucket: string,
    saved: readonly SavedStub[],
    warm: SavedStub,
    extraArgs: readonly string[],
    fn: (fr: FanrecallInstance) => Promise<T>,
    store?: ObjectServer,
  ): Promise<T> {
    for (const s of saved) restub(s);
    restub(warm);
    return this.withFanrecall(
      watch,
      bucket,
      extraArgs,
      async (fr) => {
        await readSeq(this.tools.reader, warm.path, { bs: MiB, timeoutMs: 60_000 });
        return fn(fr);
      },
      store,
    );
  }
}
