// bench/scenario-1-full-read.ts: full first read of a released 256 MiB file, caches dropped,
// on Swift and on s3rver (issue 14: the same figure on both stores, in the same run).
//
// Per store, the big stub archived there (context.bigStub(kind)), and per rep, interleaved so
// drift hits every contender alike (contest.ts): (a) fanrecall: the file made a released stub
// again, a fresh instance pointed at that store (no manifest or chunk cached in the recall
// service) warmed up by recalling another small stub (context.withBigStub), drop_caches, one
// sequential read with 1 MiB read()s, and then the whole file must be populated; (b) a
// single-stream minio-js GET of the same object from the same store to a local file after
// drop_caches; (c) on Swift only: s3fs and rclone: a fresh mount, stat, drop_caches, the same
// 1 MiB sequential read. Every read's content hash is checked against the original file, so a
// fast wrong answer fails the scenario.
// Targets: fanrecall >= 1.0x minio-js GET on each store (stretch 1.2x, shown in the row's
// note), >= 1.0x s3fs's and rclone's throughput.
// The row's note also gives what both reads cost in CPU, with the store's own processes
// (process-cpu.ts), per GiB (medians): the store runs on the same cores, so when both reads
// keep every core busy, fanrecall can go at most (GET + store) / (fanrecall + store) times
// the GET's speed: the ceiling this machine puts on the ratio.
// Owns: nothing beyond one rep (instances and mounts are stopped in finally).
import type { BenchContext, ScenarioOutcome, Scenario, StoreKind } from "./context.js";
import { fanrecallRead, fullRead, peer, runContest } from "./contest.js";
import type { ColdRead } from "./contest.js";
import type { ObjectServer } from "../test/helpers/object-server.js";
import { MiB, dropCaches, mibPerS, summarize } from "./measure.js";
import { minioGet } from "./peers.js";
import { cpuSecondsOf } from "./process-cpu.js";

const STRETCH = 1.2;
const GiB = 1024 * MiB;
const FANRECALL = /fanrecall\.js (start|holder|listener|recall-service) /;

/** Whether a command line is one of the store's server processes. */
function storeProcess(server: ObjectServer): (cmdline: string) => boolean {
  return server.kind === "swift"
    ? (cmd) => /swift-(proxy|object|container|account)-server/.test(cmd)
    : (cmd) => cmd.includes(`--dir ${server.dir} `);
}

/** CPU seconds per GiB of one read, its own and the store's, rep by rep. */
class CpuTally {
  readonly own: number[] = [];
  readonly store: number[] = [];
  cores: number[] = [];

  constructor(private readonly isStore: (cmdline: string) => boolean) {}

  /** Runs `read` (returning MiB/s), counting `ownSeconds` and the store's CPU over it. */
  async count(bytes: number, ownSeconds: () => number, read: () => Promise<number>): Promise<number> {
    const own0 = ownSeconds();
    const store0 = cpuSecondsOf(this.isStore);
    const mibs = await read();
    const own = ownSeconds() - own0;
    const store = cpuSecondsOf(this.isStore) - store0;
    this.own.push(own / (bytes / GiB));
    this.store.push(store / (bytes / GiB));
    this.cores.push(((own + store) * mibs) / (bytes / MiB));
    return mibs;
  }

  text(label: string): string {
    const m = (v: number[]) => summarize(v).median.toFixed(2);
    return `${label} ${m(this.own)} + store ${m(this.store)} (${m(this.cores)} cores)`;
  }

  perGiB(): number {
    return summarize(this.own).median + summarize(this.store).median;
  }
}

async function fullReadOn(ctx: BenchContext, kind: StoreKind): Promise<ScenarioOutcome> {
  const big = await ctx.bigStub(kind);
  const read = fullRead(ctx, big.hashes.full);
  const frCpu = new CpuTally(storeProcess(big.server));
  const getCpu = new CpuTally(storeProcess(big.server));
  const counted: ColdRead = (who, path) =>
    frCpu.count(
      big.size,
      () => cpuSecondsOf((cmd) => FANRECALL.test(cmd)),
      () => read(who, path),
    );
  const inProcess = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  const minio = async () => {
    await dropCaches();
    return getCpu.count(big.size, inProcess, async () =>
      mibPerS(big.size, await minioGet(big.server, big.bucket, big.key, big.size)),
    );
  };
  const outcome = await runContest(ctx, {
    scenario: 1,
    metric: `full first read 256 MiB, cold (1 MiB reads), ${kind}`,
    unit: "MiB/s",
    fanrecall: fanrecallRead(ctx, big, counted, (bytes) => {
      if (bytes !== big.size) throw new Error(`after the read: ${bytes} of ${big.size} bytes populated`);
    }),
    against: [
      { label: `minio-js GET (${kind})`, target: { min: 1.0 }, measure: minio },
      ...(kind === "swift" ? [peer(big, "s3fs", read, { min: 1.0 }), peer(big, "rclone", read, { min: 1.0 })] : []),
    ],
  });
  return {
    ...outcome,
    rows: outcome.rows.map((row) => {
      const ratio = row.comparisons[0].ratio;
      const ceiling = getCpu.perGiB() / frCpu.perGiB();
      const cpu =
        `CPU s/GiB: ${frCpu.text("fanrecall")}, ${getCpu.text("GET")}; ` +
        `ceiling with every core busy ${ceiling.toFixed(2)}x the GET`;
      return { ...row, note: `stretch >= ${STRETCH}x minio-js GET: ${ratio >= STRETCH ? "met" : "not met"}; ${cpu}` };
    }),
  };
}

export const scenario1: Scenario = {
  id: 1,
  title: "full first read of a released 256 MiB file, caches dropped, on Swift and on s3rver",
  async run(ctx) {
    const swift = await fullReadOn(ctx, "swift");
    const s3rver = await fullReadOn(ctx, "s3rver");
    return { reps: swift.reps, rows: [...swift.rows, ...s3rver.rows] };
  },
};
