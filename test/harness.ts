/** Scenario-test harness: the lab (src/lab/lab.ts) plus the loud root check. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { isRoot, ROOT } from '../src/lab/lab.js';

export { CLI, DaemonLab as DaemonUnderTest, isRoot, listNetns, ROOT, uniquePrefix } from '../src/lab/lab.js';

/** Say loudly what a non-root run skips. */
export function requireRoot(what: string): boolean {
  if (!isRoot) console.warn(`\n*** SKIPPED (needs root): ${what} — run the suite as root (CI does) ***\n`);
  return isRoot;
}

/**
 * Start test/fixtures/peer_server.py (answers with the peer address it saw)
 * in a namespace; resolves once it listens. The child is pushed on `track`
 * so the test can kill it.
 */
export async function servePeer(track: ChildProcess[], ns: string, proto: 'tcp' | 'udp', port: number, tag: string): Promise<void> {
  const p = spawn('ip', ['netns', 'exec', ns, 'python3', join(ROOT, 'test', 'fixtures', 'peer_server.py'), proto, String(port), tag], { stdio: ['ignore', 'pipe', 'ignore'] });
  track.push(p);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`server ${tag} did not start`)), 5000);
    p.stdout!.on('data', (b) => {
      if (String(b).includes('ready')) {
        clearTimeout(t);
        resolve();
      }
    });
  });
}
