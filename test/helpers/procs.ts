// test/helpers/procs.ts: finding the processes of one fanrecall instance (or of anything
// started with a given path on its command line) by reading /proc, for tests that kill,
// freeze or count them, and for the teardown that kills whatever is left of an instance.
//
// Owns: nothing. Signals only the pids the caller names, or the processes whose command line
// names the marker the caller gives (its own temporary directory). Holds no fds.
import { readFileSync, readdirSync, readlinkSync } from "node:fs";

export interface Proc {
  readonly pid: number;
  readonly cmd: string;
}

/** Live processes (not zombies) whose command line contains every one of `needles`. */
export function procsWith(...needles: string[]): Proc[] {
  const out: Proc[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").join(" ").trim();
    } catch {
      continue; // gone
    }
    if (cmd !== "" && needles.every((n) => cmd.includes(n))) out.push({ pid: Number(name), cmd });
  }
  return out;
}

/**
 * The pids of `fanrecall <command>` (listener, recall-service, holder) whose command line
 * names `marker` (the instance's run or state directory).
 */
export function fanrecallPids(marker: string, command: string): number[] {
  return procsWith(`fanrecall.js ${command} `, marker).map((p) => p.pid);
}

/** Whether `pid` is alive (a zombie counts as gone). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** Sends `signal` to `pid`; false when it is already gone. */
export function signalPid(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** SIGCONT, SIGTERM, then (after up to 10 s) SIGKILL every process whose command line names `marker`. */
export async function killAllWith(marker: string): Promise<void> {
  const procs = procsWith(marker);
  for (const p of procs) signalPid(p.pid, "SIGCONT");
  for (const p of procs) signalPid(p.pid, "SIGTERM");
  const deadline = Date.now() + 10_000;
  while (procs.some((p) => alive(p.pid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const p of procs) if (alive(p.pid)) signalPid(p.pid, "SIGKILL");
}

/** SIGKILL every process whose command line names `marker`, at once (for the way out). */
export function killAllWithSync(marker: string): void {
  for (const p of procsWith(marker)) signalPid(p.pid, "SIGKILL");
}

/** Polls `check` every `everyMs` until it returns a value other than undefined/false, or throws at the deadline. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs: number,
  everyMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Processes with an fd open on a file named `name` (by the fd's link: a file opened through
 * a detached mount shows a path relative to that mount), as "pid cmd -> link".
 */
export function openersOf(name: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (link === name || link.endsWith(`/${name}`)) {
        let cmd = "";
        try {
          cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").slice(0, 120);
        } catch {
          // gone
        }
        out.push(`${pid} ${cmd} fd ${fd} -> ${link}`);
      }
    }
  }
  return out;
}
