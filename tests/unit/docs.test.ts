import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');

describe('the docs', () => {
  it("testing.md's statement-budget example is a test of the suite, word for word (it runs in CI)", () => {
    expect(read('docs/testing.md')).toContain(read('tests/integration/docs-example.test.ts'));
  });

  it('every page README links to exists, and every page of docs/ is linked from README', () => {
    const readme = read('README.md');
    const linked = new Set([...readme.matchAll(/\]\((docs\/[\w-]+\.md)(#[\w-]+)?\)/g)].map((m) => m[1]!));
    for (const page of linked) expect(existsSync(path.join(root, page)), page).toBe(true);
    for (const page of readdirSync(path.join(root, 'docs'))) expect(linked, page).toContain(`docs/${page}`);
  });

  it('links between the pages of docs/ name pages that exist', () => {
    for (const page of readdirSync(path.join(root, 'docs'))) {
      for (const [, target] of read(`docs/${page}`).matchAll(/\]\(([\w-]+\.md)(#[\w-]+)?\)/g)) {
        expect(existsSync(path.join(root, 'docs', target!)), `${page} -> ${target}`).toBe(true);
      }
    }
  });
});
