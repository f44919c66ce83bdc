// bench/scenario-6-concurrency.ts: many readers, many stubs.
//
// (a) 100 readers of one released 256 MiB stub, started at the same instant (reader.c --at),
// each reading it whole: the store must serve each byte once. Store traffic is counted from
// Swift's proxy log: the S3 GET lines of the object's key (not its manifest) written during
// the rep, summing their bytes_sent. Every reader's content hash must match the original.
// (b) 64 released 4 MiB stubs read at the same instant by 64 readers: aggregate throughput
// (all bytes / time until the last reader is done) against a single-stream minio-js GET of
// a 256 MiB object, measured cold in the same rep.
// Targets: (a) bytes fetched <= 1.0x the file size; (b) aggregate >= 1.0x single stream.
// Owns: its filesystem (removed at cleanup); instances are stopped in finally each rep.
import { mkdir, readFile } from "node:fs/promises";
import { statSync } from "node:fs";
import { join } from "node:path";
import type { ObjectServer } from "../test/helpers/object-server.js";
import type { Scenario } from "./context.js";
import { writeRandomFile } from "./context.js";
import type { SeqResult } from "./measure.js";
import { MiB, dropCaches, mibPerS, nowNs, readSeq, sleep } from "./measure.js";
import { minioGet } from "./peers.js";
import { compare, figure } from "./report.js";
import type { SavedStub } from "./stubs.js";
import { archiveAndRelease, restub, saveStub } from "./stubs.js";

const READERS = 100;
const STUBS = 64;
const TIMEOUT_MS = 240_000;

/** Bytes and GETs the proxy served for bucket/key since byte `from` of its log. */
export async function storeTraffic(
  server: ObjectServer,
  from: number,
  bucket: string,
  key: string,
): Promise<{ gets: number; bytes: number }> {
  const log = await readFile(join(server.dir, "logs", "proxy.log"));
  const path = `/${bucket}/${key}`;
  let gets = 0;
  let bytes = 0;
  for (const line of log.subarray(from).toString("utf8").split("\n")) {
    // "proxy-server: CLIENT REMOTE DATE METHOD PATH PROTO STATUS REFERER UA TOKEN RECVD SENT ..."
    const t = line.split(" ");
    if (t[0] !== "proxy-server:" || t[1] === "-" || t[4] !== "GET") continue;
    const p = t[5].split("?")[0];
    if (p !== path) continue;
    gets++;
    bytes += Number(t[12]) || 0;
  }
  return { gets, bytes };
}

function logSize(server: ObjectServer): number {
  return statSync(join(server.dir, "logs", "proxy.log")).size;
}

/** Starts one reader per path at the same instant; returns their results. */
async function readTogether(reader: string, paths: readonly string[]): Promise<{ results: SeqResult[]; at: bigint }> {
  const at = nowNs() + BigInt(Math.max(1_000, paths.length * 25)) * 1_000_000n;
  const results = await Promise.all(
    paths.map((p) => readSeq(reader, p, { bs: MiB, hash: true, atNs: at, timeoutMs: TIMEOUT_MS })),
  );
  return { results, at };
}

export const scenario6: Scenario = {
  id: 6,
  title: "concurrency: 100 readers of one stub; 64 stubs recalled at once",
  async run(ctx) {
    const server = await ctx.swift();
    const reps = ctx.reps(3, 2);
    const reader = ctx.tools.reader;
    const size = 256 * MiB;
    const smallSize = 4 * MiB;
    const fs = await ctx.ext4(1024);
    const bucket = await ctx.bucket("conc");
    const one = join(fs.dir, "one.bin");
    await mkdir(join(fs.dir, "many"));
    const many = Array.from({ length: STUBS }, (_, i) => join(fs.dir, "many", `m${String(i).padStart(2, "0")}`));
    writeRandomFile(one, size);
    for (const p of many) writeRandomFile(p, smallSize);
    const expected = new Map<string, string>();
    for (const p of [one, ...many])
      expected.set(p, (await readSeq(reader, p, { bs: MiB, hash: true, timeoutMs: TIMEOUT_MS })).hash);
    const status = await ctx.withFanrecall(fs.dir, bucket, [], (fr) => archiveAndRelease(fr, [fs.dir], 600_000));
    const key = status.find((s) => s.path === one)?.object?.key;
    if (!key) throw new Error("no object key for one.bin");
    const saved: SavedStub[] = [one, ...many].map(saveStub);
    const check = (results: readonly SeqResult[], paths: readonly string[]) => {
      results.forEach((r, i) => {
        if (r.hash !== expected.get(paths[i])) throw new Error(`reader of ${paths[i]} got wrong content`);
      });
    };
    const a = { fetchedRatio: [] as number[], gets: [] as number[], wallMs: [] as number[] };
    const b = { aggregate: [] as number[], single: [] as number[] };
    for (let rep = 0; rep < reps; rep++) {
      restub(saved[0]);
      await ctx.withFanrecall(fs.dir, bucket, [], async () => {
        await dropCaches();
        const from = logSize(server);
        const paths = Array.from({ length: READERS }, () => one);
        const { results, at } = await readTogether(reader, paths);
        check(results, paths);
        const end = results.reduce((m, r) => (r.endNs > m ? r.endNs : m), 0n);
        a.wallMs.push(Number(end - at) / 1e6);
        await sleep(500);
        const t = await storeTraffic(server, from, bucket, key);
        a.fetchedRatio.push(t.bytes / size);
        a.gets.push(t.gets);
      });
      for (const s of saved.slice(1)) restub(s);
      await ctx.withFanrecall(fs.dir, bucket, [], async () => {
        await dropCaches();
        b.single.push(mibPerS(size, await minioGet(server, bucket, key, size)));
        await dropCaches();
        const { results, at } = await readTogether(reader, many);
        check(results, many);
        const end = results.reduce((m, r) => (r.endNs > m ? r.endNs : m), 0n);
        b.aggregate.push(mibPerS(STUBS * smallSize, Number(end - at) / 1e6));
      });
      ctx.log(
        `s6 rep ${rep + 1}/${reps}: 100 readers: ${a.gets[rep]} GETs, ${(a.fetchedRatio[rep] * 256).toFixed(1)} MiB ` +
          `fetched, ${a.wallMs[rep].toFixed(0)} ms; 64 stubs: ${b.aggregate[rep].toFixed(0)} MiB/s ` +
          `vs single GET ${b.single[rep].toFixed(0)} MiB/s`,
      );
    }
    const fetched = figure("fanrecall", "x file size", a.fetchedRatio);
    const agg = figure("fanrecall", "MiB/s", b.aggregate);
    return {
      reps,
      rows: [
        {
          metric: `${READERS} readers of one 256 MiB stub: store bytes`,
          fanrecall: fetched,
          comparisons: [compare(fetched, figure("each byte once", "x file size", [1]), { max: 1.0 })],
          note: `median ${figure("", "", a.gets).summary.median} GETs; all readers done ${figure("", "", a.wallMs).summary.median.toFixed(0)} ms after the common start`,
        },
        {
          metric: `${STUBS} x 4 MiB stubs recalled at once, aggregate`,
          fanrecall: agg,
          comparisons: [compare(agg, figure("minio-js single-stream GET", "MiB/s", b.single), { min: 1.0 })],
        },
      ],
      details: { ...a, ...b },
    };
  },
};
