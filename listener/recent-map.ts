// recent-map: a map that keeps only its most recently set entries, at most `max` of them.
// Setting a key makes it the newest; past `max` the oldest goes. For the listener's
// per-inode memories, which any user grows by touching files: bounded whatever they do.
//
// Owns: its entries only. Holds no fds.
export class RecentMap<K, V> {
  private readonly entries = new Map<K, V>();

  constructor(private readonly max: number) {}

  get(key: K): V | undefined {
    return this.entries.get(key);
  }

  /** Sets `key` as the newest entry; the oldest goes past the bound. */
  set(key: K, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value as K);
  }

  delete(key: K): boolean {
    return this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
