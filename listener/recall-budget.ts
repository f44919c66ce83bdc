// recall-budget: how many distinct files may be recalled at once, and how many of them one
// caller may hold. A recall counts once per inode however many readers wait on it; a caller
// (a uid, or a cgroup: a container or a systemd service) may hold at most `share` of the
// budget, so one user's thousand readers or one backup scanner cannot starve everyone else.
// Beyond its share a caller gets EAGAIN; the others get EAGAIN only when the whole budget
// is in use. The root cgroup ("/", where everything is on a machine without cgroup
// delegation) is not a caller of its own: there the uid decides.
//
// Owns: the table of inodes being recalled and who started each. Holds no fds.

export interface Caller {
  readonly uid: number;
  readonly cgroup: string;
}

export type Admission = "joined" | "admitted" | "caller-over-share" | "budget-full";

interface Entry {
  readonly caller: Caller;
  waiters: number;
}

export class RecallBudget {
  private readonly active = new Map<string, Entry>();
  private readonly byUid = new Map<number, number>();
  private readonly byCgroup = new Map<string, number>();
  private readonly perCaller: number;

  constructor(
    private readonly max: number,
    share: number,
  ) {
    this.perCaller = Math.max(1, Math.floor(max * share));
  }

  /** Whether `key` already has a recall running or queued (new waiters join it, uncounted). */
  has(key: string): boolean {
    return this.active.has(key);
  }

  /** Admits one more waiter on `key`; `caller` is asked only when a new recall would start. */
  admit(key: string, caller: () => Caller): Admission {
    const entry = this.active.get(key);
    if (entry) {
      entry.waiters++;
      return "joined";
    }
    if (this.active.size >= this.max) return "budget-full";
    const asked = caller();
    const who = asked.cgroup === "/" ? { uid: asked.uid, cgroup: "" } : asked;
    if ((this.byUid.get(who.uid) ?? 0) >= this.perCaller) return "caller-over-share";
    if (who.cgroup !== "" && (this.byCgroup.get(who.cgroup) ?? 0) >= this.perCaller) return "caller-over-share";
    this.active.set(key, { caller: who, waiters: 1 });
    this.byUid.set(who.uid, (this.byUid.get(who.uid) ?? 0) + 1);
    if (who.cgroup !== "") this.byCgroup.set(who.cgroup, (this.byCgroup.get(who.cgroup) ?? 0) + 1);
    return "admitted";
  }

  /** One waiter on `key` is done; the recall stops counting when the last one is. */
  done(key: string): void {
    const entry = this.active.get(key);
    if (!entry || --entry.waiters > 0) return;
    this.active.delete(key);
    const { uid, cgroup } = entry.caller;
    decrement(this.byUid, uid);
    if (cgroup !== "") decrement(this.byCgroup, cgroup);
  }

  /** Distinct files being recalled now. */
  get size(): number {
    return this.active.size;
  }
}

function decrement<K>(m: Map<K, number>, k: K): void {
  const n = (m.get(k) ?? 0) - 1;
  if (n > 0) m.set(k, n);
  else m.delete(k);
}
