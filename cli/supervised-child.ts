// supervised-child: one child process of `fanrecall start`, restarted whenever it dies on its
// own, with a backoff that grows to 30 s for a child that keeps dying. It never gives up:
// stopping everything would close the fanotify group, and stubs would then read as zeros;
// while the listener cannot run, the holder answers accesses fail-closed instead.
// Readiness is a socket path the child creates.
//
// Owns: the child process (its own process group, so a terminal's Ctrl-C reaches only the
// supervisor, which stops children in a safe order). Holds no fds but the child's stdio.
import type { ChildProcess } from "node:child_process";
import { existsSync, rmSync } from "node:fs";

const MAX_BACKOFF_MS = 30_000;

export interface SupervisedChildOptions {
  readonly name: string;
  readonly spawn: () => ChildProcess;
  readonly readyPath: string;
  readonly log: (msg: string) => void;
}

export class SupervisedChild {
  private child: ChildProcess | null = null;
  private stopping = false;
  private restarts: number[] = [];

  constructor(private readonly opts: SupervisedChildOptions) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(readyMs = 20_000): Promise<void> {
    rmSync(this.opts.readyPath, { force: true });
    const child = this.opts.spawn();
    this.child = child;
    child.once("exit", (code, signal) => this.exited(child, code, signal));
    const deadline = Date.now() + readyMs;
    while (!existsSync(this.opts.readyPath)) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`${this.opts.name} exited during start`);
      if (Date.now() > deadline) throw new Error(`${this.opts.name} did not become ready within ${readyMs} ms`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  private exited(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stopping || child !== this.child) return;
    const now = Date.now();
    this.restarts = this.restarts.filter((t) => now - t < 60_000);
    this.restarts.push(now);
    const delay = Math.min(MAX_BACKOFF_MS, 200 * 2 ** (this.restarts.length - 1));
    const loop = this.restarts.length > 10 ? ` (${this.restarts.length} exits in a minute: it keeps exiting)` : "";
    this.opts.log(`${this.opts.name} exited (${code ?? signal})${loop}; restarting in ${delay} ms`);
    setTimeout(() => {
      if (this.stopping) return;
      this.start().then(
        () => this.opts.log(`${this.opts.name} restarted (pid ${this.child?.pid})`),
        (err: unknown) => this.opts.log(`${this.opts.name} restart failed: ${String(err)}`),
      );
    }, delay);
  }

  /** Stops the child for good: `signal`, then SIGKILL after `ms`. */
  stop(signal: NodeJS.Signals = "SIGTERM", ms = 10_000): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => child.kill("SIGKILL"), ms);
      child.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill(signal);
    });
  }
}
