// bench/process-cpu.ts: CPU seconds (user + system) of the processes running now, read from
// /proc, for the figures that count CPU: scenario 11 (fanrecall's processes against a
// download) and scenario 1's ceiling (fanrecall and the store's processes, against a plain GET
// and the store's).
//
// Owns: nothing; reads /proc only (10 ms resolution: clock ticks of 100 Hz).
import { readFileSync, readdirSync } from "node:fs";

const CLK_TCK = 100;

export interface ProcCpu {
  readonly pid: number;
  readonly ppid: number;
  /** Its arguments joined by spaces. */
  readonly cmdline: string;
  /** utime + stime, seconds. */
  readonly seconds: number;
}

/** Every process now, with its CPU seconds so far (those gone while read are left out). */
export function processCpu(): ProcCpu[] {
  const out: ProcCpu[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").join(" ");
      out.push({ pid: Number(name), ppid: Number(f[1]), cmdline, seconds: (Number(f[11]) + Number(f[12])) / CLK_TCK });
    } catch {
      // gone while we looked
    }
  }
  return out;
}

/** CPU seconds so far of the processes whose command line `match` accepts. */
export function cpuSecondsOf(match: (cmdline: string) => boolean): number {
  return processCpu()
    .filter((p) => match(p.cmdline))
    .reduce((sum, p) => sum + p.seconds, 0);
}
