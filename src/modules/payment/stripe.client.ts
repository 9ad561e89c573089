import Stripe from 'stripe';
import type { Config } from '../../config.js';

export type StripeClient = Stripe;

/**
 * The official SDK, configured once per app: bounded timeout, SDK network retries (which reuse our
 * Idempotency-Key), and `STRIPE_API_BASE` to point it at a Stripe API double. Null without a key.
 */
export function createStripeClient(config: Config['stripe']): StripeClient | null {
  if (!config.secretKey) return null;
  const base = config.apiBase ? new URL(config.apiBase) : null;
  return new Stripe(config.secretKey, {
    timeout: config.timeoutMs,
    maxNetworkRetries: config.maxNetworkRetries,
    telemetry: false,
    appInfo: { name: 'paygraph' },
    ...(base
      ? {
          host: base.hostname,
          port: base.port || (base.protocol === 'https:' ? 443 : 80),
          protocol: base.protocol === 'https:' ? 'https' : 'http',
        }
      : {}),
  });
}
