// inode-queue: runs the work for one inode one at a time, in arrival order, while work for
// different inodes runs concurrently. Concurrent readers of one stub therefore cause one
// recall, and a release can never interleave with a recall of the same file.
//
// Owns: the per-inode promise chains and the count of queued items, and the key that names
// an inode (inodeKey). Holds no fds.

/** The key of an inode: the same for every fd of it, whatever its path. */
export function inodeKey(st: { dev: number; ino: number }): string {
  return `${st.dev}:${st.ino}`;
}

export class InodeQueue {
  private readonly tails = new Map<string, Promise<void>>();
  private queued = 0;

  get size(): number {
    return this.queued;
  }

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    this.queued++;
    const prev = this.tails.get(key) ?? Promise.resolve();
    const result = prev.then(work).finally(() => this.queued--);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}
