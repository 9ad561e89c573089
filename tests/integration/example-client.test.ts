import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate } from '@graphql-codegen/cli';
import { createTestApp, type TestApp } from '../helpers/test-app.js';
import { signedEvent, WEBHOOK_SECRET } from '../helpers/stripe-double.js';
import { projectRoot } from '../helpers/server-process.js';
import codegenConfig from '../../examples/client/codegen.js';
import { createPaygraphClient, type PaymentUpdate } from '../../examples/client/src/client.js';

/**
 * The example client as client teams would use it: typed documents generated from schema.graphql (a
 * schema change that breaks them fails here and in the typecheck), sent by hash to a server that trusts
 * only the manifest codegen wrote, paging with cursors and subscribing to changes.
 */
describe('the example client', () => {
  it('its generated documents and manifest are what codegen writes from the committed schema', async () => {
    const outputs = await generate({ ...codegenConfig, cwd: projectRoot, silent: true }, false);
    expect(outputs.length).toBeGreaterThanOrEqual(4);
    for (const output of outputs) {
      const committed = await readFile(path.resolve(projectRoot, output.filename), 'utf8').catch(() => '(missing)');
      expect(committed, `${output.filename} is stale: run npm run client:codegen`).toBe(output.content);
    }
  });

  describe('against a server that trusts only its manifest', () => {
    let t: TestApp;
    let url: string;
    beforeAll(async () => {
      t = await createTestApp({
        seed: { users: 3, paymentsPerUser: 20 },
        env: { GRAPHQL_TRUSTED_DOCUMENTS: path.join(projectRoot, 'examples/client/src/gql/persisted-documents.json'), STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET },
      });
      await t.app.fastify.listen({ host: '127.0.0.1', port: 0 });
      url = `http://127.0.0.1:${(t.app.fastify.server.address() as { port: number }).port}/graphql`;
    });
    afterAll(async () => t?.close());

    it("pages through all of the viewer's payments with cursors", async () => {
      const client = createPaygraphClient({ url, token: await t.userToken(2) });
      const first = await client.paymentsPage(7);
      expect(first.nodes).toHaveLength(7);
      expect(first.pageInfo.hasNextPage).toBe(true);
      const all = await client.allPayments(7);
      const truth = await t.sql<{ id: number }>('select id from payments where user_id = 2 order by created_at desc, id desc');
      expect(all.map((p) => Number(p.id))).toEqual(truth.map((r) => r.id));
      expect(all[0]).toEqual({ id: expect.any(String), amount: expect.any(Number), currency: expect.any(String), status: expect.any(String), createdAt: expect.any(String) });
      await client.close();
    });

    it("is told of each change of the viewer's payments", async () => {
      const client = createPaygraphClient({ url, token: await t.userToken(2) });
      const changes: PaymentUpdate[] = [];
      const errors: unknown[] = [];
      const stop = client.watchPayments((p) => changes.push(p), (e) => errors.push(e));
      for (let i = 0; i < 200 && t.app.realtime.activeSubscriptions < 1; i++) await new Promise((r) => setTimeout(r, 10));
      expect(errors).toEqual([]);
      const [pending] = await t.sql<{ id: number; stripe_payment_id: string }>(`select id, stripe_payment_id from payments where user_id = 2 and status = 'PENDING' order by id limit 1`);
      const event = signedEvent('payment_intent.succeeded', { id: pending!.stripe_payment_id, object: 'payment_intent' });
      const res = await t.app.fastify.inject({ method: 'POST', url: '/webhooks/stripe', headers: { 'content-type': 'application/json', 'stripe-signature': event.signature }, payload: event.payload });
      expect(res.json().outcome).toBe('transitioned');
      for (let i = 0; i < 100 && changes.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(changes).toEqual([{ id: String(pending!.id), status: 'COMPLETED', amount: expect.any(Number), amountRefunded: 0 }]);
      stop();
      await client.close();
    });
  });
});
