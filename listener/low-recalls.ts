// low-recalls: the turn of recalls that a `low` recall rule names (a backup agent, a
// scanner). One starts only while no other recall is running or queued, and never more than
// its rule's `max` at once; until then its access is held, first come first served, for at
// most `waitMs` (then the dispatcher answers overloaded: EAGAIN). Readers of a file already
// being recalled join that recall and never wait here.
//
// Owns: the waiting list and the count of low recalls running per rule. Must not own: the
// recall budget or the queue (dispatcher.ts, recall-budget.ts), answering anything. Holds no
// fds (the dispatcher keeps each waiting event's fd).

interface Waiter {
  readonly rule: string;
  readonly max: number;
  readonly then: (go: boolean) => void;
  readonly timer: NodeJS.Timeout;
}

export class LowRecalls {
  private readonly running = new Map<string, number>();
  private readonly waiting: Waiter[] = [];
  private runningTotal = 0;

  /** `active`: recalls running or queued now, the low ones started here included. */
  constructor(private readonly active: () => number) {}

  /**
   * Calls `then(true)` when a low recall of `rule` may start (it then counts until `done`),
   * `then(false)` after `waitMs` or at `stop`. `then(true)` runs at once, inside the call that
   * freed the turn, so the recall is in `active` before anyone else is let in.
   */
  wait(rule: string, opts: { max: number; waitMs: number }, then: (go: boolean) => void): void {
    const timer = setTimeout(() => this.leave(waiter, false), opts.waitMs);
    const waiter: Waiter = { rule, max: opts.max, then, timer };
    this.waiting.push(waiter);
    this.pump();
  }

  /** A low recall of `rule` ended. */
  done(rule: string): void {
    const n = (this.running.get(rule) ?? 1) - 1;
    if (n > 0) this.running.set(rule, n);
    else this.running.delete(rule);
    this.runningTotal = Math.max(0, this.runningTotal - 1);
    this.pump();
  }

  /** Starts whoever may start now; call whenever a recall ends. */
  pump(): void {
    for (const w of [...this.waiting]) {
      if (this.active() - this.runningTotal > 0) return;
      if ((this.running.get(w.rule) ?? 0) >= w.max) continue;
      this.running.set(w.rule, (this.running.get(w.rule) ?? 0) + 1);
      this.runningTotal++;
      this.leave(w, true);
    }
  }

  /** Shutdown: nobody waits any more. */
  stop(): void {
    for (const w of [...this.waiting]) this.leave(w, false);
  }

  /** Accesses waiting for their turn. */
  get queued(): number {
    return this.waiting.length;
  }

  private leave(w: Waiter, go: boolean): void {
    const i = this.waiting.indexOf(w);
    if (i < 0) return;
    this.waiting.splice(i, 1);
    clearTimeout(w.timer);
    w.then(go);
  }
}
