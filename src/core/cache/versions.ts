import { randomBytes } from 'node:crypto';

export const TAG_PREFIX = 'tag:';
/** Tag versions outlive entries; an expired or evicted tag only causes misses (see `TagVersions`). */
export const TAG_TTL_MS = 24 * 60 * 60 * 1000;

/** A new tag version; after a write, it carries that write's position (`<random>.<lsn>`). */
export function newVersion(position = 0): string {
  const random = randomBytes(6).toString('base64url');
  return position > 0 ? `${random}.${position}` : random;
}

/** The write position a tag version carries (0: none, e.g. a version made for a tag never written). */
export function versionPosition(version: string | undefined): number {
  if (!version) return 0;
  const dot = version.indexOf('.');
  return dot < 0 ? 0 : Number(version.slice(dot + 1)) || 0;
}

/**
 * Creates missing tag versions atomically: for each key, stores `fresh` only if the key is absent, and
 * answers the version stored afterwards (ours, or the one another instance wrote first). A plain SET
 * here could overwrite a concurrent invalidation's new version with one that an entry loaded before
 * that write then carries, and that entry would count as current until its TTL.
 */
export type CreateTagVersions = (entries: readonly { key: string; fresh: string }[], ttlMs: number) => Promise<string[]>;

/**
 * The current versions of tags as a read needs them. Missing ones (never written, expired or evicted)
 * are created atomically and the version the store then holds is used, so an invalidation that lands
 * between our read and our create always wins. Concurrent misses of a tag in this process share one
 * creation. The load starts only after this, so whatever it reads is at least as new as the versions.
 */
export class TagVersions {
  /** Tag versions this process is creating, so concurrent misses of one cold tag ask the store once. */
  private readonly creating = new Map<string, Promise<string>>();

  constructor(
    private readonly create: CreateTagVersions,
    private readonly guard: <T>(operation: Promise<T>) => Promise<T>,
    /** The primary's WAL position now (0 without replicas), which a version made now must carry. */
    private readonly positionNow: (loggerContext?: Record<string, unknown>) => Promise<number>,
  ) {}

  /** `stored`: what the store answered for each tag's key (a version, or nothing). */
  async current(tags: string[], stored: unknown[], loggerContext?: Record<string, unknown>): Promise<Record<string, string>> {
    const versions: Record<string, string> = {};
    const waiting: [string, Promise<string>][] = [];
    const toCreate: { tag: string; key: string }[] = [];
    tags.forEach((tag, i) => {
      const v = stored[i];
      if (typeof v === 'string') versions[tag] = v;
      else {
        const joined = this.creating.get(tag);
        if (joined) waiting.push([tag, joined]);
        else toCreate.push({ tag, key: TAG_PREFIX + tag });
      }
    });
    if (toCreate.length > 0) {
      // The tag's last write is unknown here (it may have been evicted or flushed away): the new
      // version carries the primary's position now, which is past that write, so no replica that
      // has not replayed it fills anything under it.
      const created = this.positionNow(loggerContext).then((position) =>
        this.guard(this.create(toCreate.map(({ key }) => ({ key, fresh: newVersion(position) })), TAG_TTL_MS)),
      );
      toCreate.forEach(({ tag }, n) => {
        const version = created.then((all) => all[n]!);
        this.creating.set(tag, version);
        const forget = () => this.creating.get(tag) === version && this.creating.delete(tag);
        version.then(forget, forget);
        waiting.push([tag, version]);
      });
    }
    // Each creation already has a handler (the `forget` above): awaiting them together leaves none behind.
    const settled = await Promise.all(waiting.map(([, version]) => version));
    waiting.forEach(([tag], n) => (versions[tag] = settled[n]!));
    return versions;
  }
}
