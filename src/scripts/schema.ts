/**
 * `npm run schema:emit` writes schema.graphql from the code; `npm run schema:check` fails when the
 * committed file differs from what the code builds.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { buildAppSchema, printAppSchema } from '../schema.js';

const file = new URL('../../schema.graphql', import.meta.url);
const sdl = printAppSchema(await buildAppSchema());

if (process.argv.includes('--check')) {
  const committed = await readFile(file, 'utf8').catch(() => '');
  if (committed !== sdl) {
    console.error('schema.graphql is out of date with the code: run `npm run schema:emit` and commit it.');
    process.exit(1);
  }
  console.log('schema.graphql matches the code.');
} else {
  await writeFile(file, sdl);
  console.log('wrote schema.graphql');
}
