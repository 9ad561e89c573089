import { randomUUID } from 'node:crypto';
import { closeRedisClient, createRedisClient, type RedisClient } from '../../core/redis.js';
import type { PaymentRow } from '../payment/payment.repository.js';

/** One change of a payment: the row as it is after the committed change. */
export interface PaymentEvent {
  payment: PaymentRow;
}

type Listener = (event: PaymentEvent) => void;

export interface PaymentEventBusOptions {
  /** With Redis, events reach every instance subscribed to the same channel; without, this process only. */
  redisUrl?: string;
  /** Instances that share data share the channel (`<namespace>:payment-updated`). */
  namespace: string;
  onError?: (message: string, error: unknown) => void;
}

/**
 * Payment changes, fanned out. `publish` delivers to this instance's listeners at once (so local
 * subscribers never depend on Redis) and, with Redis, PUBLISHes the event for the other instances;
 * an instance ignores its own messages coming back. If Redis is down, local delivery goes on, the
 * failure is counted, and cross-instance delivery resumes when the clients reconnect (node-redis
 * subscribes again by itself).
 */
export class PaymentEventBus {
  readonly instanceId = randomUUID();
  readonly counts = { published: 0, received: 0, publishErrors: 0 };
  private readonly listeners = new Set<Listener>();
  private publisher: RedisClient | null = null;
  private subscriber: RedisClient | null = null;
  private readonly channel: string;

  constructor(private readonly options: PaymentEventBusOptions) {
    this.channel = `${options.namespace}:payment-updated`;
  }

  /** Connects to Redis when configured (bounded; the bus works locally meanwhile). */
  async start(): Promise<void> {
    if (!this.options.redisUrl) return;
    this.publisher = createRedisClient(this.options.redisUrl);
    this.subscriber = createRedisClient(this.options.redisUrl);
    for (const client of [this.publisher, this.subscriber]) client.on('error', (err: unknown) => this.options.onError?.('payment events: Redis error', err));
    const connected = Promise.all([
      this.publisher.connect(),
      this.subscriber.connect().then(() => this.subscriber!.subscribe(this.channel, (message) => this.receive(message))),
    ]).catch((err: unknown) => this.options.onError?.('payment events: Redis not reachable; delivering on this instance only until it is', err));
    await Promise.race([connected, new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
  }

  /** Calls `listener` for every event from now on; returns the function that stops it. */
  listen(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  async publish(event: PaymentEvent): Promise<void> {
    this.counts.published++;
    this.deliver(event);
    if (!this.publisher) return;
    try {
      await this.publisher.publish(this.channel, JSON.stringify({ origin: this.instanceId, ...event }));
    } catch (err) {
      this.counts.publishErrors++;
      this.options.onError?.('payment events: could not publish to Redis; other instances miss this event', err);
    }
  }

  async close(): Promise<void> {
    this.listeners.clear();
    for (const client of [this.subscriber, this.publisher]) if (client) await closeRedisClient(client);
  }

  private receive(message: string): void {
    let parsed: { origin?: string; payment?: PaymentRow };
    try {
      parsed = JSON.parse(message);
    } catch {
      return;
    }
    if (parsed.origin === this.instanceId || !parsed.payment) return;
    this.counts.received++;
    this.deliver({ payment: parsed.payment });
  }

  private deliver(event: PaymentEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.options.onError?.('payment events: a listener failed', err);
      }
    }
  }
}
