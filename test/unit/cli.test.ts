// The command line answers --help for itself and every command, and rejects unknown ones.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { COMMANDS } from "../../cli/usage.js";

const bin = new URL("../../bin/fanrecall.js", import.meta.url).pathname;

function run(...args: string[]) {
  return spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", timeout: 20_000 });
}

test("fanrecall --help lists every command", () => {
  const r = run("--help");
  assert.equal(r.status, 0, r.stderr);
  for (const c of COMMANDS) assert.match(r.stdout, new RegExp(`^  ${c.name} `, "m"));
});

test("every command answers --help with its usage", () => {
  for (const c of COMMANDS) {
    const r = run(c.name, "--help");
    assert.equal(r.status, 0, `${c.name}: ${r.stderr}`);
    assert.ok(r.stdout.startsWith(`Usage: fanrecall ${c.name}`), r.stdout);
  }
});

test("an unknown command exits 2 with the usage on stderr", () => {
  const r = run("frobnicate");
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown command 'frobnicate'/);
});
