// periodic-reconcile: `fanrecall start`'s regular `fanrecall reconcile` of each watched
// directory (the snapshot that a rebuild after a lost disk starts from, and the retention of
// unreferenced objects). Each run is a child process of its own (root, the same code), one at
// a time; its output goes to start's log. A run that fails is logged and tried again at the
// next interval; stop() ends a running one.
//
// Owns: the timer and the running reconcile child. Must not own: what a reconcile does.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { formatDuration } from "../settings/settings.js";

export interface PeriodicReconcileOptions {
  readonly bin: string;
  readonly runDir: string;
  readonly watch: readonly string[];
  readonly everyMs: number;
  readonly retainMs: number;
  readonly env: NodeJS.ProcessEnv;
  readonly log: (msg: string) => void;
}

export class PeriodicReconcile {
  private timer: NodeJS.Timeout | null = null;
  private running: ChildProcess | null = null;
  private stopped = false;

  constructor(private readonly opts: PeriodicReconcileOptions) {}

  start(): void {
    if (this.opts.everyMs === 0) return;
    this.timer = setInterval(() => void this.runAll(), this.opts.everyMs);
    this.timer.unref();
  }

  private async runAll(): Promise<void> {
    if (this.running !== null) return;
    for (const dir of this.opts.watch) {
      if (this.stopped) return;
      const code = await this.runOne(dir);
      if (code !== 0)
        this.opts.log(`reconcile of ${dir} failed (exit ${code}); next try in ${formatDuration(this.opts.everyMs)}`);
    }
  }

  private runOne(dir: string): Promise<number | null> {
    const args = ["reconcile", "--run-dir", this.opts.runDir, "--retain", formatDuration(this.opts.retainMs), dir];
    const child = spawn(process.execPath, [this.opts.bin, ...args], {
      env: this.opts.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.running = child;
    const relay = (b: Buffer) => {
      for (const line of b.toString("utf8").split("\n"))
        if (line.trim()) this.opts.log(line.replace(/^fanrecall /, ""));
    };
    child.stdout.on("data", relay);
    child.stderr.on("data", relay);
    return new Promise((resolve) => {
      child.once("close", (code) => {
        this.running = null;
        resolve(code);
      });
      child.once("error", () => resolve(null));
    });
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.running?.kill("SIGTERM");
  }
}
