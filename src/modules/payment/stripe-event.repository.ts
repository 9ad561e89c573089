import { EntityRepository } from '@mikro-orm/postgresql';
import type { StripeEvent } from './stripe-event.entity.js';
import { queryRows } from '../../core/sql.js';

/** `stripe_events`: the record of every Stripe event accepted, written with the change it caused. */
export class StripeEventRepository extends EntityRepository<StripeEvent> {
  /** Records a newly received event; false when it was recorded before (a redelivery, also a concurrent one). */
  async recordReceived(id: string, type: string): Promise<boolean> {
    const rows = await queryRows(
      this.getEntityManager(),
      `insert into stripe_events (id, type, outcome) values (?, ?, 'received') on conflict (id) do nothing returning id`,
      [id, type],
    );
    return rows.length > 0;
  }

  async recordOutcome(id: string, outcome: string, paymentId: number | null): Promise<void> {
    await queryRows(this.getEntityManager(), `update stripe_events set outcome = ?, payment_id = ?, processed_at = now() where id = ?`, [
      outcome,
      paymentId,
      id,
    ]);
  }
}
