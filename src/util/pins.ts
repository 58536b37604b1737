/**
 * Counted pins by key, for the caches that evict least recently used entries but must keep some
 * (frames being served, a pending build's files): a key stays pinned until every pin taken on it
 * is released.
 */
export class PinCounts<K> {
  private readonly counts = new Map<K, number>()

  has(key: K): boolean {
    return this.counts.has(key)
  }

  add(key: K): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1)
  }

  /** Drops one pin of `key`; a key without pins is left as it is. */
  remove(key: K): void {
    const n = (this.counts.get(key) ?? 0) - 1
    if (n > 0) this.counts.set(key, n)
    else this.counts.delete(key)
  }

  /** Takes a pin and returns its release: idempotent, it calls `onRelease` after the first call's drop. */
  pin(key: K, onRelease?: () => void): () => void {
    this.add(key)
    let done = false
    return () => {
      if (done) return
      done = true
      this.remove(key)
      onRelease?.()
    }
  }
}
