/** The C anchors in bench/reference/: built with `cc -O2` into build/ when missing or older than their source. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../src/lab/lab.js';

/** build/<name> from bench/reference/<name>.c; its path, or an error string. */
export function buildReference(name: string): { bin: string } | { error: string } {
  const src = join(ROOT, 'bench', 'reference', `${name}.c`);
  const bin = join(ROOT, 'build', name);
  if (!existsSync(src)) return { error: `missing ${src}` };
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(join(ROOT, 'build'), { recursive: true });
    const cc = spawnSync(process.env.CC ?? 'cc', ['-O2', '-o', bin, src], { encoding: 'utf8' });
    if (cc.status !== 0) return { error: `cc failed: ${cc.error?.message ?? cc.stderr.trim()}` };
  }
  return { bin };
}
