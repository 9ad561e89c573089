/** `npm run token -- <email>`: prints a bearer token for that user, signed with the server's secret. */
import { withDatabase } from './cli.js';
import { developmentJwtSecret } from '../modules/auth/auth.js';
import { tokenForEmail } from '../modules/auth/tokens.js';

const email = process.argv.slice(2).find((a) => !a.startsWith('--'));
if (!email) {
  console.error('usage: npm run token -- <email>');
  process.exit(2);
}

await withDatabase({ entry: 'token' }, async (orm, config) => {
  const secret = config.jwtSecret ?? (await developmentJwtSecret(config.dataDir));
  const token = await tokenForEmail(orm.em.fork(), secret, email, config.jwtTtlSeconds);
  if (!token) {
    console.error(`no user with email ${email}`);
    process.exitCode = 1;
    return;
  }
  console.log(token);
});
