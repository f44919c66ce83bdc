// bench/scenario-11-cpu.ts: what a cold full read costs in CPU, against what a plain download
// of the same object costs.
//
// Per rep: (a) fanrecall: the big 256 MiB stub released again, a fresh warmed-up instance
// (context.withBigStub), drop_caches, one sequential read with 1 MiB read()s whose content
// hash must match; the CPU seconds (user + system, /proc/PID/stat) of every process of the
// instance (supervisor, holder, listener, recall service: the whole tree under `fanrecall
// start`) over the read, per GiB read. (b) a minio-js fGetObject of the same object to a local
// file, in a child process of its own, its CPU seconds (process.cpuUsage) per GiB. The reader
// program's own CPU is in neither.
// Target: fanrecall <= 1.5x the download's CPU seconds per GiB (fanrecall also verifies every
// block, in the recall service and again in the listener, and writes through the fd).
// Owns: nothing beyond one rep (the instance is stopped in finally; the download's temp file
// is removed).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnChild } from "../test/helpers/child.js";
import type { BigStub, Scenario } from "./context.js";
import { MiB, dropCaches, readSeq } from "./measure.js";
import { processCpu } from "./process-cpu.js";
import { compare, figure } from "./report.js";

const GiB = 1024 * MiB;

/** utime + stime (seconds) of `root` and every process below it, by role. */
function treeCpuSeconds(root: number): Map<string, number> {
  const procs = processCpu();
  const parentOf = new Map(procs.map((p) => [p.pid, p.ppid]));
  const inTree = (pid: number): boolean => {
    for (let p: number | undefined = pid; p !== undefined && p > 1; p = parentOf.get(p)) if (p === root) return true;
    return false;
  };
  const byRole = new Map<string, number>();
  for (const p of procs) {
    if (!inTree(p.pid)) continue;
    const argv = p.cmdline.split(" ");
    const role = ["listener", "recall-service", "holder", "start"].find((r) => argv.includes(r)) ?? "other";
    byRole.set(role, (byRole.get(role) ?? 0) + p.seconds);
  }
  return byRole;
}

/** `after` less `before`, role by role, and their total. */
function used(
  before: Map<string, number>,
  after: Map<string, number>,
): { total: number; roles: Record<string, number> } {
  const roles: Record<string, number> = {};
  for (const [role, s] of after) roles[role] = s - (before.get(role) ?? 0);
  return { total: Object.values(roles).reduce((a, b) => a + b, 0), roles };
}

/** CPU seconds of a minio-js fGetObject of the big stub's object, in a process of its own. */
async function downloadCpuSeconds(big: BigStub): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), "fanrecall-bench-cpu-"));
  try {
    const url = new URL(big.server.endpoint);
    const src = `
      const { Client } = require("minio");
      const c = new Client({ endPoint: ${JSON.stringify(url.hostname)}, port: ${Number(url.port)}, useSSL: false,
        accessKey: ${JSON.stringify(big.server.accessKey)}, secretKey: ${JSON.stringify(big.server.secretKey)},
        region: ${JSON.stringify(big.server.region)}, pathStyle: true });
      const before = process.cpuUsage();
      c.fGetObject(${JSON.stringify(big.bucket)}, ${JSON.stringify(big.key)}, ${JSON.stringify(join(dir, "object"))}).then(() => {
        const u = process.cpuUsage(before);
        process.stdout.write(String((u.user + u.system) / 1e6) + "\\n");
      });`;
    await dropCaches();
    const r = await spawnChild([process.execPath, "-e", src], { timeoutMs: 120_000, cwd: process.cwd() }).result;
    const seconds = Number(r.stdout.toString().trim());
    if (r.code !== 0 || !Number.isFinite(seconds)) throw new Error(`download failed: ${r.stderr}`);
    return seconds;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export const scenario11: Scenario = {
  id: 11,
  title: "CPU seconds per GiB of a cold full read, against a plain download",
  async run(ctx) {
    const big = await ctx.bigStub();
    const reps = ctx.reps(3, 2);
    const fr: number[] = [];
    const get: number[] = [];
    const roles: Array<Record<string, number>> = [];
    for (let rep = 0; rep < reps; rep++) {
      const cpu = await ctx.withBigStub(big, [], async (inst) => {
        await dropCaches();
        const before = treeCpuSeconds(inst.child.pid!);
        const r = await readSeq(ctx.tools.reader, big.path, { bs: MiB, hash: true, timeoutMs: 300_000 });
        if (r.hash !== big.hashes.full) throw new Error("fanrecall read wrong content");
        return used(before, treeCpuSeconds(inst.child.pid!));
      });
      const gib = big.size / GiB;
      fr.push(cpu.total / gib);
      roles.push(Object.fromEntries(Object.entries(cpu.roles).map(([r, sec]) => [r, sec / gib])));
      get.push((await downloadCpuSeconds(big)) / (big.size / GiB));
      const split = Object.entries(roles[rep])
        .map(([r, v]) => `${r} ${v.toFixed(2)}`)
        .join(", ");
      ctx.log(
        `s11 rep ${rep + 1}/${reps}: fanrecall ${fr[rep].toFixed(2)} CPU s/GiB (${split}), download ${get[rep].toFixed(2)}`,
      );
    }
    const mine = figure("fanrecall (all its processes)", "CPU s/GiB", fr);
    return {
      reps,
      rows: [
        {
          metric: "CPU per GiB, cold full read 256 MiB",
          fanrecall: mine,
          comparisons: [compare(mine, figure("minio-js fGetObject to a file", "CPU s/GiB", get), { max: 1.5 })],
        },
      ],
      details: { fanrecall: fr, download: get, byProcess: roles },
    };
  },
};
