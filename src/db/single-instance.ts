import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { MikroORM } from '@mikro-orm/postgresql';
import { attributedFork } from '../core/sql-stats.js';
import { queryRows } from '../core/sql.js';

const LEASE = 'single-instance';
/** A holder that stops renewing (killed, frozen, cut off) loses the lease after this long. */
const LEASE_SECONDS = 15;
const RENEW_MS = 5000;

export class SingleInstanceTakenError extends Error {
  override name = 'SingleInstanceTakenError';
}

/**
 * What SINGLE_INSTANCE=true promises, enforced: the process holds the `single-instance` lease row
 * (in `instance_leases`, so it works through a transaction-mode pooler, unlike a session advisory lock),
 * renews it every 5 s, and releases it when it stops. A second instance on the same database is
 * refused at start, naming the holder; a holder that died lets go after 15 s. A holder that finds its
 * lease taken (it was frozen past the lease, and another started) calls `onLost`: it must stop.
 */
export class SingleInstanceLease {
  private timer: NodeJS.Timeout | null = null;

  private constructor(
    private readonly orm: MikroORM,
    readonly holder: string,
  ) {}

  static async acquire(orm: MikroORM, onLost: (reason: string) => void): Promise<SingleInstanceLease> {
    const lease = new SingleInstanceLease(orm, `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`);
    const [taken] = await queryRows<{ holder: string }>(
      lease.em(),
      `insert into instance_leases (name, holder, expires_at) values (?, ?, now() + make_interval(secs => ?))
       on conflict (name) do update set holder = excluded.holder, expires_at = excluded.expires_at
         where instance_leases.expires_at < now()
       returning holder`,
      [LEASE, lease.holder, LEASE_SECONDS],
    );
    if (!taken) {
      const [current] = await queryRows<{ holder: string; seconds: number }>(
        lease.em(),
        'select holder, greatest(0, extract(epoch from expires_at - now()))::float8 as seconds from instance_leases where name = ?',
        [LEASE],
      );
      throw new SingleInstanceTakenError(
        `SINGLE_INSTANCE=true, but another instance (${current?.holder ?? 'unknown'}) is running on this database` +
          ` (its lease ends ${Math.ceil(current?.seconds ?? 0)} s after it stops renewing). Run one instance, or several with REDIS_URL`,
      );
    }
    lease.timer = setInterval(() => {
      lease.renew().then(
        (held) => held || onLost(`the single-instance lease was taken by another instance`),
        // The database away: try again at the next tick (nobody else can take it meanwhile either).
        () => undefined,
      );
    }, RENEW_MS);
    lease.timer.unref();
    return lease;
  }

  /** Lets the lease go at once, so a replacement can start without waiting for it to expire. */
  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await queryRows(this.em(), 'delete from instance_leases where name = ? and holder = ?', [LEASE, this.holder]).catch(() => undefined);
  }

  private async renew(): Promise<boolean> {
    const rows = await queryRows(this.em(), 'update instance_leases set expires_at = now() + make_interval(secs => ?) where name = ? and holder = ? returning name', [
      LEASE_SECONDS,
      LEASE,
      this.holder,
    ]);
    return rows.length > 0;
  }

  private em() {
    return attributedFork(this.orm.em, 'single-instance-lease');
  }
}
