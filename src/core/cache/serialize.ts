/**
 * JSON that keeps `Date`s (and `undefined` inside arrays as null, as JSON does). Values cross Redis as
 * text, so a `createdAt` must come back a `Date`, not a string.
 */
const DATE_TAG = '$date';

export function serialize(value: unknown): string {
  return JSON.stringify(value, function (this: Record<string, unknown>, key, v) {
    const raw = this[key];
    return raw instanceof Date ? { [DATE_TAG]: raw.getTime() } : v;
  });
}

export function deserialize<T = unknown>(text: string): T {
  return JSON.parse(text, (_key, v) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const keys = Object.keys(v);
      if (keys.length === 1 && keys[0] === DATE_TAG && typeof v[DATE_TAG] === 'number') return new Date(v[DATE_TAG]);
    }
    return v;
  }) as T;
}
