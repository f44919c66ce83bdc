// test/helpers/timed-readers.ts: readers run as another unprivileged user (uid/gid 1234, not
// 65534, which `fanrecall start` gives the recall service), timed from spawn to exit, and the
// verdict every death test gives each of them: it ended within its limit and got exactly the
// original bytes or failed with EIO; never zeros, never other bytes.
//
// Owns: the reader processes it spawns (each with a hard timeout that SIGKILLs it). Holds no
// fds but their stdio pipes.
import { OTHER_UID, setprivAs, spawnChild } from "./child.js";
import type { ChildResult, Spawned } from "./child.js";
import { sha256 } from "./reader-files.js";

/** A reader that shares nothing with the recall user or with nobody. */
export const READER_UID = OTHER_UID;

/** setpriv prefix: uid/gid 1234, no groups, no capabilities, no_new_privs. */
export const SETPRIV_READER: readonly string[] = setprivAs(READER_UID);

export interface TimedResult extends ChildResult {
  /** Spawn to exit. */
  readonly ms: number;
}

export interface TimedReader {
  readonly path: string;
  readonly spawned: Spawned;
  readonly startedAt: number;
  readonly result: Promise<TimedResult>;
  /** Whether it is still running (held). */
  running(): boolean;
}

/**
 * Spawns a reader of `path` as uid 1234: `cat path` unless `argv` (run after the setpriv
 * prefix) is given; its stdout must be the file's bytes either way.
 */
export function spawnReader(path: string, argv: readonly string[] = ["cat", path], timeoutMs = 60_000): TimedReader {
  const startedAt = Date.now();
  const spawned = spawnChild([...SETPRIV_READER, ...argv], { timeoutMs });
  const result = spawned.result.then((r) => ({ ...r, ms: Date.now() - startedAt }));
  return {
    path,
    spawned,
    startedAt,
    result,
    running: () => spawned.child.exitCode === null && spawned.child.signalCode === null,
  };
}

export type Verdict = "right" | "eio";

/**
 * What the reader got: "right" (the original bytes) or "eio"; or a string describing what is
 * wrong (zeros, other bytes, another error, too late).
 */
export function judgeRead(
  r: TimedResult,
  expectedSha: string,
  limitMs: number,
): { verdict: Verdict } | { problem: string } {
  const late = r.ms > limitMs ? `took ${r.ms} ms (limit ${limitMs} ms); ` : "";
  if (r.code === 0) {
    const got = sha256(r.stdout);
    if (got === expectedSha) return late ? { problem: `${late}right bytes` } : { verdict: "right" };
    const zeros = r.stdout.length > 0 && r.stdout.every((b) => b === 0);
    const what = zeros ? "ZEROS (a stub's hole)" : `WRONG bytes (sha256 ${got}, ${r.stdout.length} bytes)`;
    return { problem: `${late}${what}` };
  }
  if (/Input\/output error/.test(r.stderr)) return late ? { problem: `${late}EIO` } : { verdict: "eio" };
  return { problem: `${late}exit ${r.code ?? r.signal}: ${r.stderr.trim().slice(0, 300)}` };
}

/** Verdict counts and problems of many readers. */
export class ReadLedger {
  right = 0;
  eio = 0;
  readonly problems: string[] = [];

  constructor(private readonly limitMs: number) {}

  add(label: string, path: string, r: TimedResult, expectedSha: string): Verdict | null {
    const j = judgeRead(r, expectedSha, this.limitMs);
    if ("problem" in j) {
      this.problems.push(`${label} ${path}: ${j.problem}`);
      return null;
    }
    if (j.verdict === "right") this.right++;
    else this.eio++;
    return j.verdict;
  }

  get total(): number {
    return this.right + this.eio + this.problems.length;
  }

  toString(): string {
    return `${this.total} readers: ${this.right} right bytes, ${this.eio} EIO, ${this.problems.length} problems`;
  }
}
