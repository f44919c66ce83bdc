// bench/measure.ts: the bench's measuring tools: summaries (median, min, max), the page-cache
// drop, the C helpers (compiled once per run with cc) and a typed runner for bench/reader.c.
//
// Owns: the build directory of the C helpers (a temp dir, removed by the caller through the
// cleanup stack) and the reader child processes it spawns (each with a hard timeout).
// Must not: measure anything by itself or hold state between runs; no fanrecall code is
// touched, only its test helpers are reused (child.ts for bounded children).
// Units: durations are milliseconds (number) unless a name says Ns; sizes are bytes; 1 MiB is
// 2^20 bytes.
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { runChild } from "../test/helpers/child.js";

const run = promisify(execFile);

export const MiB = 1024 * 1024;

export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
  readonly values: readonly number[];
}

export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) throw new Error("summarize: no values");
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1], n: sorted.length, values: [...values] };
}

export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Monotonic now in ns: the clock bench/reader.c uses for --at and its start/end stamps. */
export function nowNs(): bigint {
  return process.hrtime.bigint();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Throughput in MiB/s of `bytes` moved in `ms`. */
export function mibPerS(bytes: number, ms: number): number {
  return bytes / MiB / (ms / 1000);
}

/** Writes back dirty pages and drops the page, dentry and inode caches. */
export async function dropCaches(): Promise<void> {
  const r = await runChild(["sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`drop_caches failed: ${r.stderr}`);
}

export interface CTools {
  readonly reader: string;
  readonly minListener: string;
  readonly dir: string;
  cleanup(): Promise<void>;
}

/** Compiles bench/reader.c and bench/min-listener.c with cc -O2 into a temp dir. */
export async function buildCTools(): Promise<CTools> {
  const dir = await mkdtemp(join(tmpdir(), "fanrecall-bench-bin-"));
  const src = (name: string) => fileURLToPath(new URL(`./${name}`, import.meta.url));
  try {
    const out = { reader: join(dir, "reader"), minListener: join(dir, "min-listener") };
    await run("cc", ["-O2", "-Wall", "-Wextra", "-o", out.reader, src("reader.c")], { timeout: 60_000 });
    await run("cc", ["-O2", "-Wall", "-Wextra", "-o", out.minListener, src("min-listener.c")], { timeout: 60_000 });
    return { ...out, dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
  } catch (err: unknown) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

export interface SeqResult {
  readonly bytes: number;
  readonly firstNs: number;
  readonly totalNs: number;
  readonly startNs: bigint;
  readonly endNs: bigint;
  readonly hash: string;
}

export interface PreadResult {
  readonly bytes: number;
  readonly ns: number;
  /** reader.c's 64-bit hash of the bytes read (hex). */
  readonly hash: string;
}

export interface FilesResult {
  readonly files: number;
  readonly bytes: number;
  readonly ns: number;
}

export interface LatResult {
  readonly n: number;
  readonly medianNs: number;
  readonly p99Ns: number;
  readonly meanNs: number;
}

/** Runs bench/reader.c with a hard timeout; returns its JSON line (big integers kept exact). */
export async function runReader(reader: string, args: readonly string[], timeoutMs: number): Promise<string> {
  const r = await runChild([reader, ...args], { timeoutMs });
  if (r.code !== 0) {
    const why = r.signal === "SIGKILL" ? `timed out after ${timeoutMs} ms` : `exit ${r.code ?? r.signal}`;
    throw new Error(`reader ${args.join(" ")}: ${why}: ${r.stderr.trim()}`);
  }
  return r.stdout.toString().trim();
}

export function parseSeq(line: string): SeqResult {
  const o = JSON.parse(line) as { bytes: number; firstNs: number; totalNs: number; hash: string };
  const big = (name: string): bigint => {
    const m = new RegExp(`"${name}":(\\d+)`).exec(line);
    if (!m) throw new Error(`reader output lacks ${name}: ${line}`);
    return BigInt(m[1]);
  };
  return { ...o, startNs: big("startNs"), endNs: big("endNs") };
}

export async function readSeq(
  reader: string,
  path: string,
  opts: { bs: number; hash?: boolean; atNs?: bigint; timeoutMs: number },
): Promise<SeqResult> {
  const args = ["seq", path, String(opts.bs)];
  if (opts.hash) args.push("--hash");
  if (opts.atNs !== undefined) args.push("--at", opts.atNs.toString());
  return parseSeq(await runReader(reader, args, opts.timeoutMs));
}

export async function readAt(
  reader: string,
  path: string,
  offset: number,
  length: number,
  timeoutMs: number,
): Promise<PreadResult> {
  return JSON.parse(await runReader(reader, ["pread", path, String(offset), String(length)], timeoutMs)) as PreadResult;
}

export async function readFiles(reader: string, prefix: string, n: number, timeoutMs: number): Promise<FilesResult> {
  return JSON.parse(await runReader(reader, ["files", prefix, String(n)], timeoutMs)) as FilesResult;
}

export async function preadLatency(reader: string, path: string, n: number, timeoutMs: number): Promise<LatResult> {
  return JSON.parse(await runReader(reader, ["lat", path, String(n)], timeoutMs)) as LatResult;
}

/** `dd if=PATH of=/dev/null bs=BS`, timed by dd itself (its "copied, S s" figure), in ms. */
export async function ddRead(path: string, bs: string, timeoutMs: number): Promise<number> {
  const r = await runChild(["dd", `if=${path}`, "of=/dev/null", `bs=${bs}`], {
    timeoutMs,
    env: { ...process.env, LC_ALL: "C" },
  });
  const m = /copied, ([\d.e+-]+) s/.exec(r.stderr);
  if (r.code !== 0 || !m) throw new Error(`dd ${path} failed: ${r.stderr.trim()}`);
  return Number(m[1]) * 1000;
}
