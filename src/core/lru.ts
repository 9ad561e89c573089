/**
 * A Map that keeps its most recently used entries: past `max` entries, or past `maxWeight` when a
 * `weigh` function gives each entry a weight (the bytes of a response body, say), the least recently
 * used go first. Reads (`get`) count as use. The one bounded map of the server: the memory cache store,
 * documents, compiled queries, verified tokens, local budgets and response bodies all use it.
 */
export class Lru<K, V> extends Map<K, V> {
  private weightNow = 0;

  constructor(
    private readonly max: number,
    private readonly weight?: { weigh: (value: V, key: K) => number; max: number },
  ) {
    super();
  }

  /** The sum of the entries' weights (0 without `weigh`). */
  get totalWeight(): number {
    return this.weightNow;
  }

  override get(key: K): V | undefined {
    const value = super.get(key);
    if (value !== undefined) {
      super.delete(key);
      super.set(key, value);
    }
    return value;
  }

  /** Sets `key` as the most recent entry. An entry heavier than `maxWeight` on its own is not kept. */
  override set(key: K, value: V): this {
    this.delete(key);
    const weight = this.weight ? this.weight.weigh(value, key) : 0;
    if (this.weight && weight > this.weight.max) return this;
    super.set(key, value);
    this.weightNow += weight;
    while (this.size > this.max || (this.weight && this.weightNow > this.weight.max)) this.delete(this.keys().next().value as K);
    return this;
  }

  override delete(key: K): boolean {
    if (this.weight) {
      const value = super.get(key);
      if (value !== undefined || super.has(key)) this.weightNow -= this.weight.weigh(value as V, key);
    }
    return super.delete(key);
  }

  override clear(): void {
    this.weightNow = 0;
    super.clear();
  }
}
