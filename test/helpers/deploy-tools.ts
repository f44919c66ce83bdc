// test/helpers/deploy-tools.ts: the external tools the deploy tests run (kubectl's kustomize,
// systemd-analyze, systemd-sysusers), run with a timeout and no stdin, plus YAML parsing and
// small type guards for the parsed documents.
//
// Owns: the skip-or-fail decision for a missing tool. On a workstation the test is skipped
// with the reason; with CI=true (or RECALL_REQUIRE_ROOT_TESTS=1) it fails, because a CI run
// that silently skips the deploy checks is a failed run.
// Must not: touch anything outside the temporary directories its callers pass. Holds no fds.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { basename, delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestContext } from "node:test";
import { parseAllDocuments } from "yaml";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const DEPLOY_DIR = join(REPO_ROOT, "deploy");

const TOOL_TIMEOUT_MS = 15_000;

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export function toolsRequired(): boolean {
  return process.env.CI === "true" || process.env.RECALL_REQUIRE_ROOT_TESTS === "1";
}

/** The first of `names` found as an executable on PATH (or as an absolute path), or null. */
export function findExecutable(...names: string[]): string | null {
  const dirs = (process.env.PATH ?? "").split(delimiter).filter(Boolean);
  for (const name of names) {
    for (const candidate of name.startsWith("/") ? [name] : dirs.map((d) => join(d, name))) {
      try {
        accessSync(candidate, constants.X_OK);
        return candidate;
      } catch {
        // not here
      }
    }
  }
  return null;
}

/**
 * The path of the first of `names` on PATH. When none is there: fails the test under CI,
 * skips it (with `why` and the package to install) elsewhere, and returns null.
 */
export function requireTool(t: TestContext, names: string[], why: string): string | null {
  const found = findExecutable(...names);
  if (found) return found;
  const message = `${names.join(" or ")} not found on PATH: ${why}`;
  if (toolsRequired()) assert.fail(`${message} (required here: CI=true or RECALL_REQUIRE_ROOT_TESTS=1)`);
  t.skip(message);
  return null;
}

export interface RunResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion: no stdin, a timeout, output as text. */
export function run(command: string, args: readonly string[], options: { cwd?: string } = {}): RunResult {
  const r = spawnSync(command, args, {
    cwd: options.cwd ?? REPO_ROOT,
    input: "",
    encoding: "utf8",
    timeout: TOOL_TIMEOUT_MS,
    maxBuffer: 16 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Renders a kustomization directory with `kubectl kustomize DIR` or `kustomize build DIR`. */
export function renderKustomization(tool: string, dir: string): string {
  const args = basename(tool) === "kustomize" ? ["build", dir] : ["kustomize", dir];
  const r = run(tool, args);
  assert.equal(r.status, 0, `${basename(tool)} ${args.join(" ")} failed:\n${r.stderr}`);
  return r.stdout;
}

/** Every document of a YAML stream, as plain JSON values; any YAML error fails. */
export function parseYamlStream(text: string, what: string): Json[] {
  const docs = parseAllDocuments(text);
  const out: Json[] = [];
  for (const doc of docs) {
    assert.deepEqual(
      doc.errors.map((e) => e.message),
      [],
      `${what}: YAML errors`,
    );
    const value = doc.toJS() as Json;
    if (value !== null) out.push(value);
  }
  return out;
}

/** A JSON value as text for messages: strings as they are, anything else as JSON. */
export function jsonText(v: Json | undefined): string {
  return typeof v === "string" ? v : (JSON.stringify(v) ?? "undefined");
}

export function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `v` as an object, failing with `what` otherwise. */
export function objectAt(v: Json | undefined, what: string): JsonObject {
  assert.ok(isObject(v), `${what} is not an object`);
  return v;
}

/** `v` as an array (an absent value is an empty array), failing with `what` otherwise. */
export function arrayAt(v: Json | undefined, what: string): Json[] {
  if (v === undefined) return [];
  assert.ok(Array.isArray(v), `${what} is not a list`);
  return v;
}

/** `v` as a list of strings (absent: empty), failing with `what` otherwise. */
export function stringsAt(v: Json | undefined, what: string): string[] {
  return arrayAt(v, what).map((s, i) => {
    assert.equal(typeof s, "string", `${what}[${i}] is not a string`);
    return jsonText(s);
  });
}
