/**
 * A map that keeps only the `max` keys touched most recently (peers, hosts: runners come and
 * go, so a tally per key must not grow forever). A Map iterates in insertion order: a touched
 * key is re-inserted, so the first key is always the stalest.
 */
export class RecentMap<V> {
  private readonly map = new Map<string, V>()

  constructor (private readonly max: number) {}

  /** The value of `key` (made with `make` when missing), now the most recent; the stalest past `max` go. */
  touch (key: string, make: () => V): V {
    const value = this.map.get(key) ?? make()
    this.map.delete(key)
    this.map.set(key, value)
    for (const old of this.map.keys()) {
      if (this.map.size <= this.max) break
      this.map.delete(old)
    }
    return value
  }

  /** The value of `key`, if kept (not made more recent). */
  get (key: string): V | undefined {
    return this.map.get(key)
  }

  delete (key: string): void {
    this.map.delete(key)
  }

  entries (): IterableIterator<[string, V]> {
    return this.map.entries()
  }
}
