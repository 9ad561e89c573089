/**
 * `npm run schema:emit` writes schema.graphql (the API) and schema.subgraph.graphql (the same as an
 * Apollo Federation 2 subgraph, GRAPHQL_FEDERATION=true) from the code; `npm run schema:check` fails
 * when either committed file differs from what the code builds.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { buildAppSchema, printAppSchema } from '../schema.js';
import { buildSubgraph, printSubgraph } from '../modules/federation/federation.js';

const schema = await buildAppSchema();
const sdl = printAppSchema(schema);
const files: [URL, string][] = [
  [new URL('../../schema.graphql', import.meta.url), sdl],
  [new URL('../../schema.subgraph.graphql', import.meta.url), printSubgraph(buildSubgraph(schema, sdl))],
];

if (process.argv.includes('--check')) {
  let stale = false;
  for (const [file, text] of files) {
    const name = file.pathname.split('/').pop();
    if ((await readFile(file, 'utf8').catch(() => '')) !== text) {
      console.error(`${name} is out of date with the code: run \`npm run schema:emit\` and commit it.`);
      stale = true;
    } else console.log(`${name} matches the code.`);
  }
  if (stale) process.exit(1);
} else {
  for (const [file, text] of files) {
    await writeFile(file, text);
    console.log(`wrote ${file.pathname.split('/').pop()}`);
  }
}
