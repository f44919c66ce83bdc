// prctl(PR_SET_DUMPABLE, 0) through the native facade, in a child process (the attribute is
// per process and stays until exec): a process of the same uid (this one) can no longer
// read the child's environment (the child's /proc files become root's 0400). No root needed.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { NATIVE_FACADE_URL, nodeEvalArgv, spawnChild } from "../helpers/child.js";

const CHILD = `
import { setNonDumpable, getDumpable } from ${JSON.stringify(NATIVE_FACADE_URL)};
const before = getDumpable();
if (process.env.MAKE_NON_DUMPABLE === "1") setNonDumpable();
process.stdout.write(JSON.stringify({ before, after: getDumpable() }) + "\\n");
process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
`;

async function probe(nonDumpable: boolean): Promise<{ state: unknown; environ: string }> {
  const child = spawnChild(nodeEvalArgv(CHILD), {
    env: { ...process.env, MAKE_NON_DUMPABLE: nonDumpable ? "1" : "0", PROBE_SECRET: "hunter2" },
  });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.child.stdout?.on("data", (b: Buffer) => {
        out += b.toString();
        if (out.includes("\n")) resolve(out.trim());
      });
      child.result.then((r) => reject(new Error(`child exited: ${r.stderr}`)), reject);
    });
    let environ: string;
    try {
      environ = readFileSync(`/proc/${child.pid}/environ`, "latin1");
    } catch (err: unknown) {
      environ = (err as NodeJS.ErrnoException).code ?? "error";
    }
    return { state: JSON.parse(line), environ };
  } finally {
    child.kill();
    await child.result.catch(() => undefined);
  }
}

test("setNonDumpable: the process is no longer dumpable and its environ is closed to its own uid", async (t) => {
  const plain = await probe(false);
  assert.deepEqual(plain.state, { before: 1, after: 1 });
  if (process.getuid?.() === 0) {
    t.diagnostic("as root (CAP_SYS_PTRACE) the environ stays readable; only the flag is checked");
  } else {
    assert.match(plain.environ, /PROBE_SECRET=hunter2/, "control: a dumpable child's environ is readable");
  }
  const hidden = await probe(true);
  assert.deepEqual(hidden.state, { before: 1, after: 0 });
  if (process.getuid?.() !== 0) assert.equal(hidden.environ, "EACCES");
});
