import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** The folder of the code this process runs: `src/` under tsx, `dist/` in the image. */
const CODE_ROOT = path.resolve(import.meta.dirname, '..');

function codeFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) return codeFiles(full);
      return /\.(js|ts|mjs|cjs)$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [full] : [];
    })
    .sort();
}

/**
 * An id of the code that runs: a hash of its own files (the compiled ones, or the TypeScript sources,
 * whichever this process loaded) and of package.json and package-lock.json (the dependencies, which
 * shape rows and responses too). Cache entries and whole responses are keyed by it, so two versions of
 * the server side by side (a rolling deploy) never read each other's; tag versions and read-your-writes
 * marks are shared by every version, so a write on either still invalidates what the other cached.
 */
export function buildId(root = CODE_ROOT): string {
  const hash = createHash('sha256');
  const project = path.dirname(root);
  const files = [...codeFiles(root), ...['package.json', 'package-lock.json'].map((f) => path.join(project, f)).filter((f) => existsSync(f))];
  for (const file of files) {
    hash.update(path.relative(project, file)).update('\0').update(readFileSync(file)).update('\0');
  }
  return hash.digest('base64url').slice(0, 12);
}
