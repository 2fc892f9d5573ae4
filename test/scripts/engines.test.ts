import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// `npm ci` on the oldest Node the package supports prints no EBADENGINE: no locked dependency asks for a newer one.
describe('package-lock.json engines', () => {
  it('every locked package with a ">=X.Y" node engine accepts the oldest Node in package.json engines', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { engines: { node: string } };
    const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as { packages: Record<string, { engines?: { node?: string }; optional?: boolean }> };
    const parse = (v: string) => v.split('.').map((n) => Number.parseInt(n, 10) || 0);
    const oldest = parse(/^>=\s*([\d.]+)$/.exec(pkg.engines.node)![1]!);
    const newer = (a: number[], b: number[]) => {
      for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
      return false;
    };
    const refusing = Object.entries(lock.packages)
      .filter(([path, p]) => path !== '' && !p.optional)
      .filter(([, p]) => {
        const m = /^>=\s*v?([\d.]+)$/.exec(p.engines?.node?.trim() ?? '');
        return m !== null && newer(parse(m[1]!), oldest);
      })
      .map(([path, p]) => `${path} (node ${p.engines!.node})`);
    expect(refusing).toEqual([]);
  });
});
