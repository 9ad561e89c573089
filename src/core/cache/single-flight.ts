import { asError } from './cache.types.js';

/**
 * Loads in flight in this process by key: a second miss of the same key (at the same tag versions)
 * waits for the first load instead of sending its own. A flight is forgotten when it settles.
 */
export class SingleFlight {
  private readonly flights = new Map<string, Promise<unknown>>();

  /**
   * Fills `results` at the indexes `missing`: from a load of the same key already in flight, else from
   * one call of `load` for all the others (registered as their flights when `keyOf` is given; without
   * it, nothing is shared). Every promise gets its handlers where it is made, and this never rejects:
   * a failed load writes its error into the places of its keys, so one failure fails those keys only.
   */
  async load<T>(missing: readonly number[], results: (T | Error)[], keyOf: ((i: number) => string) | null, load: (toLoad: number[]) => Promise<T[]>): Promise<void> {
    const toLoad: number[] = [];
    const waits: Promise<void>[] = [];
    for (const i of missing) {
      const flight = keyOf ? this.flights.get(keyOf(i)) : undefined;
      if (flight) {
        waits.push(
          flight.then(
            (value) => void (results[i] = value as T),
            (err: unknown) => void (results[i] = asError(err)),
          ),
        );
      } else toLoad.push(i);
    }
    if (toLoad.length > 0) {
      const loading = load(toLoad);
      if (keyOf) toLoad.forEach((i, n) => this.add(keyOf(i), loading.then((values) => values[n])));
      waits.push(
        loading.then(
          (values) => toLoad.forEach((i, n) => (results[i] = values[n] as T)),
          (err: unknown) => {
            const error = asError(err);
            for (const i of toLoad) results[i] = error;
          },
        ),
      );
    }
    await Promise.all(waits);
  }

  /** Registers `flight` under `key` until it settles (it gets its handlers here). */
  private add(key: string, flight: Promise<unknown>): void {
    const forget = () => void (this.flights.get(key) === flight && this.flights.delete(key));
    void flight.then(forget, forget);
    this.flights.set(key, flight);
  }
}
