// bench/report.ts: the shapes of bench results, how a comparison is judged against its target,
// the printed table and the JSON file (bench/results/latest.json by default).
//
// Owns: formatting and the output file. Every ratio is built here from two Figures of the
// same run (fanrecall's and a baseline's median), so the table and the JSON always agree.
// Must not: run or time anything.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Summary } from "./measure.js";
import { summarize } from "./measure.js";

export interface Figure {
  readonly label: string;
  readonly unit: string;
  readonly summary: Summary;
}

export interface Comparison {
  readonly against: Figure;
  /** fanrecall's median divided by the baseline's median. */
  readonly ratio: number;
  /** e.g. ">= 1.2x" or "<= 0.1x"; "info" when there is no target. */
  readonly target: string;
  readonly met: boolean | null;
}

/** One line of the table (plus one per further comparison); its scenario is the result's id. */
export interface Row {
  readonly metric: string;
  readonly fanrecall: Figure;
  readonly comparisons: readonly Comparison[];
  readonly note?: string;
}

export interface ScenarioResult {
  readonly id: number;
  readonly title: string;
  readonly reps: number;
  readonly durationS: number;
  readonly rows: readonly Row[];
  readonly error?: string;
  readonly details?: Record<string, unknown>;
}

/** On fanrecall's median / the baseline's: at least `min` (throughputs) or at most `max` (times, bytes). */
export interface Target {
  readonly min?: number;
  readonly max?: number;
}

export function figure(label: string, unit: string, values: readonly number[]): Figure {
  return { label, unit, summary: summarize(values) };
}

/** fanrecall's figure against a baseline's, judged by `target` (none: for information). */
export function compare(fr: Figure, against: Figure, target: Target = {}): Comparison {
  const ratio = fr.summary.median / against.summary.median;
  if (target.min !== undefined) return { against, ratio, target: `>= ${target.min}x`, met: ratio >= target.min };
  if (target.max !== undefined) return { against, ratio, target: `<= ${target.max}x`, met: ratio <= target.max };
  return { against, ratio, target: "info", met: null };
}

/** A figure as the table prints it: three or so significant digits. */
export function formatNumber(v: number): string {
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1000) return v.toFixed(0);
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 0.01) return v.toFixed(2);
  return v.toPrecision(2);
}

/** Three significant digits, so a ratio just past its target never prints as the target. */
function ratioText(v: number): string {
  return v >= 100 ? v.toFixed(0) : v.toPrecision(3);
}

export function formatFigure(f: Figure): string {
  const s = f.summary;
  const range = s.n > 1 ? ` (${formatNumber(s.min)}-${formatNumber(s.max)})` : "";
  return `${formatNumber(s.median)}${range} ${f.unit}`;
}

function pad(s: string, w: number): string {
  return s.length >= w ? s : s + " ".repeat(w - s.length);
}

const COLS = [2, 50, 28, 54, 7, 8, 3] as const;

function line(cells: readonly string[]): string {
  return cells
    .map((c, i) => pad(c, COLS[i]))
    .join(" ")
    .trimEnd();
}

export function formatTable(results: readonly ScenarioResult[]): string {
  const out: string[] = [line(["#", "metric", "fanrecall", "baseline / peer", "ratio", "target", "met"])];
  out.push("-".repeat(COLS.reduce((a, b) => a + b + 1, 0)));
  for (const r of results) {
    if (r.error) out.push(line([String(r.id), `${r.title}: FAILED: ${r.error}`]));
    for (const row of r.rows) {
      const first = row.comparisons[0];
      const cells = (c: Comparison | undefined) => [
        c ? `${c.against.label}: ${formatFigure(c.against)}` : "",
        c ? `${ratioText(c.ratio)}x` : "",
        c ? c.target : "",
        c?.met === true ? "yes" : c?.met === false ? "NO" : "",
      ];
      out.push(line([String(r.id), row.metric, formatFigure(row.fanrecall), ...cells(first)]));
      for (const c of row.comparisons.slice(1)) out.push(line(["", "", "", ...cells(c)]));
      if (row.note) out.push(line(["", `  (${row.note})`]));
    }
  }
  const all = results.flatMap((r) => r.rows.flatMap((row) => row.comparisons));
  const met = all.filter((c) => c.met === true).length;
  const missed = all.filter((c) => c.met === false).length;
  const failed = results.filter((r) => r.error).length;
  out.push("");
  out.push(`targets met: ${met}, missed: ${missed}; scenarios failed: ${failed}`);
  return out.join("\n");
}

export function writeJson(path: string, payload: Record<string, unknown>): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(payload, null, 2) + "\n");
}
