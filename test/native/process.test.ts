// prctl(PR_SET_DUMPABLE, 0) through the native facade, in a child process (the attribute is
// per process and stays until exec): a process of the same uid can no longer read the child's
// environment (the child's /proc files become root's 0400). The child is never root (as root
// the test runs it, and the process that reads its environment, as uid 65534): who owns its
// /proc files is then how it sees its own dumpability, its uid when dumpable, root when not.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { isRoot } from "../helpers/root.js";
import { NATIVE_FACADE_URL, nodeEvalArgv, runAsNobody, spawnAsNobody, spawnChild } from "../helpers/child.js";

const CHILD = `
import { statSync } from "node:fs";
import { setNonDumpable } from ${JSON.stringify(NATIVE_FACADE_URL)};
const dumpable = () => (statSync("/proc/self/status").uid === process.getuid() ? 1 : 0);
const before = dumpable();
if (process.env.MAKE_NON_DUMPABLE === "1") setNonDumpable();
process.stdout.write(JSON.stringify({ before, after: dumpable() }) + "\\n");
setInterval(() => undefined, 60_000); // until killed: the environ is read meanwhile
`;

/** Prints the file argv[1] names, or the error code reading it gave. */
const READ_FILE = `
try { process.stdout.write(require("node:fs").readFileSync(process.argv[1], "latin1")); }
catch (err) { process.stdout.write(err.code ?? "error"); }
`;

/** The child's environ, read by a process of the child's uid that is not the child. */
async function environOf(pid: number): Promise<string> {
  const path = `/proc/${pid}/environ`;
  if (isRoot()) return (await runAsNobody([process.execPath, "-e", READ_FILE, path])).stdout.toString("latin1");
  try {
    return readFileSync(path, "latin1");
  } catch (err: unknown) {
    return (err as NodeJS.ErrnoException).code ?? "error";
  }
}

async function probe(nonDumpable: boolean): Promise<{ state: unknown; environ: string }> {
  const spawn = isRoot() ? spawnAsNobody : spawnChild;
  const child = spawn(nodeEvalArgv(CHILD), {
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
    return { state: JSON.parse(line), environ: await environOf(child.pid) };
  } finally {
    child.kill();
    await child.result.catch(() => undefined);
  }
}

test("setNonDumpable: the process is no longer dumpable and its environ is closed to its own uid", async () => {
  const plain = await probe(false);
  assert.deepEqual(plain.state, { before: 1, after: 1 });
  assert.match(plain.environ, /PROBE_SECRET=hunter2/, "control: a dumpable child's environ is readable");
  const hidden = await probe(true);
  assert.deepEqual(hidden.state, { before: 1, after: 0 });
  assert.equal(hidden.environ, "EACCES");
});
