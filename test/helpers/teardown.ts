// test/helpers/teardown.ts: the one mechanism by which tests undo what they do to the machine
// (mounts, loop devices, temporary directories, processes, users), on every way out.
//
// Two halves, used together:
// - undoOnExit(undo): every helper that makes such a thing registers a synchronous undo for it
//   at once, and forgets it when its own cleanup has really undone it. Whatever is still
//   registered runs, newest first, when the process exits, or when it is killed by SIGTERM,
//   SIGINT or SIGHUP (the test runner's timeout, Ctrl-C, `timeout -s INT`), or when the test
//   runner that started it dies. An undo must be idempotent and should not throw (it may run
//   after a cleanup that got half way; a throw is ignored and the next undo still runs).
// - Teardown: a suite's or a test's own cleanups (the helpers' async cleanup()), added as
//   things are made and run from after() or finally, newest first, each even when an earlier
//   one throws: the first error is thrown at the end.
// Owns: the process's exit and signal hooks, and a 1 s check that the test runner is alive.
// Must not: signal or unmount anything itself.
// Holds no fds.
import { readFileSync } from "node:fs";
import { constants } from "node:os";

const SIGNALS = ["SIGTERM", "SIGINT", "SIGHUP"] as const;

/** Undos not yet forgotten, in registration order. */
const pending = new Map<number, () => void>();
let nextId = 0;
let hooked = false;

/** Runs every pending undo, newest first; each runs once, whatever the others do. */
function undoAll(): void {
  for (const [id, undo] of [...pending].reverse()) {
    pending.delete(id);
    try {
      undo();
    } catch {
      // an undo is best effort on the way out; the next one still runs
    }
  }
}

/** The parent's pid now (process.ppid is fixed at start-up): field 4 of /proc/self/stat. */
function parentPid(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

function hook(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", undoAll);
  for (const sig of SIGNALS) {
    // Kept installed: a second signal while the undos run (the runner passing one on, a second
    // Ctrl-C) must not end the process half way through them.
    const onSignal = (): void => {
      undoAll();
      // End as the signal would have without this handler, unless someone else handles it.
      if (process.listeners(sig).every((l) => l === onSignal)) process.exit(128 + constants.signals[sig]);
    };
    process.on(sig, onSignal);
  }
  // A test file's process whose runner died (killed alone, not with its process group) must
  // not run on: it ends as if sent SIGTERM, at its next report (which goes to the runner on
  // stdout and fails with EPIPE; unhandled, node would exit at once, with no 'exit' event) or
  // within a second (its parent changes), whichever comes first.
  if (process.env.NODE_TEST_CONTEXT !== undefined) {
    const runnerGone = (): void => {
      undoAll();
      process.exit(128 + constants.signals.SIGTERM);
    };
    process.stdout.on("error", runnerGone);
    const runner = parentPid();
    setInterval(() => {
      if (parentPid() !== runner) runnerGone();
    }, 1_000).unref();
  }
}

/**
 * Registers `undo` to run if the process ends before the returned `forget` is called. Call
 * forget once the thing is really gone (not before: a kill in between must still undo it).
 */
export function undoOnExit(undo: () => void): () => void {
  hook();
  const id = nextId++;
  pending.set(id, undo);
  return () => {
    pending.delete(id);
  };
}

/** Cleanups run newest first, each even when an earlier one throws; run() throws the first error. */
export class Teardown {
  private readonly fns: Array<() => unknown> = [];

  add(fn: () => unknown): void {
    this.fns.push(fn);
  }

  async run(): Promise<void> {
    const errors: unknown[] = [];
    for (const fn of this.fns.splice(0).reverse()) {
      try {
        await fn();
      } catch (err: unknown) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw errors[0];
  }
}
