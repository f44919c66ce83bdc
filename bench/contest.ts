// bench/contest.ts: what scenarios 1-3 and 8 share: contenders timed one after the other in
// every rep (interleaved, so drift hits each alike), one log line a rep, and one table row:
// fanrecall against each other contender, with its target. Also the cold reads of the big
// stub they time (drop_caches first; the content is checked against the original's hash, so a
// fast wrong answer fails the scenario) and the FUSE peers as contenders.
//
// Owns: nothing beyond one measurement (fanrecall instances and peer mounts are stopped in
// finally by context.ts and peers.ts).
// Must not: pick contenders or targets (each scenario does).
import { join } from "node:path";
import { stat } from "node:fs/promises";
import type { BenchContext, BigStub, ScenarioOutcome } from "./context.js";
import { MiB, dropCaches, mibPerS, readAt, readSeq } from "./measure.js";
import type { PeerKind } from "./peers.js";
import { withPeer } from "./peers.js";
import type { Target } from "./report.js";
import { compare, figure, formatNumber } from "./report.js";

export interface Contender {
  readonly label: string;
  /** On fanrecall's median / this contender's; none: reported for information. */
  readonly target?: Target;
  /** One rep's figure, in the contest's unit. */
  measure(): Promise<number>;
}

export interface Contest {
  /** The scenario's id, for the log lines. */
  readonly scenario: number;
  readonly metric: string;
  readonly unit: string;
  /** fanrecall's measurement: the row's own figure, taken first in each rep. */
  readonly fanrecall: () => Promise<number>;
  readonly against: readonly Contender[];
  /** Every other rep in reverse order, so that neither of two contenders always goes first. */
  readonly alternate?: boolean;
  /** Reps (default 5, --quick 2). */
  readonly reps?: { readonly full: number; readonly quick: number };
}

/** One cold read of a file, `who` naming the reader in errors: a figure in the contest's unit. */
export type ColdRead = (who: string, path: string) => Promise<number>;

const REPS = { full: 5, quick: 2 };
const FULL_READ_TIMEOUT_MS = 180_000;
const PREAD_TIMEOUT_MS = 120_000;

export async function runContest(ctx: BenchContext, c: Contest): Promise<ScenarioOutcome> {
  const all: readonly Contender[] = [{ label: "fanrecall", measure: c.fanrecall }, ...c.against];
  const values = all.map((): number[] => []);
  const reps = ctx.reps((c.reps ?? REPS).full, (c.reps ?? REPS).quick);
  for (let rep = 0; rep < reps; rep++) {
    const order = [...all.keys()];
    if (c.alternate && rep % 2 === 1) order.reverse();
    for (const i of order) values[i].push(await all[i].measure());
    const figures = all.map((one, i) => `${one.label} ${formatNumber(values[i][rep])}`);
    ctx.log(`s${c.scenario} rep ${rep + 1}/${reps}: ${figures.join(", ")} ${c.unit}`);
  }
  const fr = figure("fanrecall", c.unit, values[0]);
  const comparisons = c.against.map((one, i) => compare(fr, figure(one.label, c.unit, values[i + 1]), one.target));
  return { reps, rows: [{ metric: c.metric, fanrecall: fr, comparisons }] };
}

/** drop_caches, then one sequential read with 1 MiB read()s that must hash to `hash`: MiB/s. */
export function fullRead(ctx: BenchContext, hash: string): ColdRead {
  return async (who, path) => {
    await dropCaches();
    const r = await readSeq(ctx.tools.reader, path, { bs: MiB, hash: true, timeoutMs: FULL_READ_TIMEOUT_MS });
    if (r.hash !== hash) throw new Error(`${who} read wrong content (hash ${r.hash} != ${hash})`);
    return mibPerS(r.bytes, r.totalNs / 1e6);
  };
}

/** drop_caches, then open + pread(4 KiB at offset) + close, bytes that must hash to `hash`: ms. */
export function pread4KiB(ctx: BenchContext, offset: number, hash: string): ColdRead {
  return async (who, path) => {
    await dropCaches();
    const r = await readAt(ctx.tools.reader, path, offset, 4096, PREAD_TIMEOUT_MS);
    if (r.hash !== hash) throw new Error(`${who} read wrong bytes at ${offset}`);
    return r.ns / 1e6;
  };
}

/**
 * fanrecall: each rep a fresh warmed-up instance (context.withBigStub), `read` of the big stub,
 * then `populated` with the bytes that read left populated (fanrecall status).
 */
export function fanrecallRead(
  ctx: BenchContext,
  big: BigStub,
  read: ColdRead,
  populated: (bytes: number) => void,
): () => Promise<number> {
  return () =>
    ctx.withBigStub(big, [], async (inst) => {
      const value = await read("fanrecall", big.path);
      const [st] = await inst.status([big.path]);
      populated(st.populatedBytes);
      return value;
    });
}

/** A FUSE peer: each rep a fresh mount of the big stub's bucket, a stat of the object (a user's ls), then `read`. */
export function peer(big: BigStub, kind: PeerKind, read: ColdRead, target?: Target): Contender {
  return {
    label: kind,
    target,
    measure: () =>
      withPeer(kind, big.server, big.bucket, async (m) => {
        const path = join(m.dir, big.key);
        await stat(path);
        return read(kind, path);
      }),
  };
}
