/** Small helpers shared by the root tests that drive namespaces directly (no daemon). */
import { execFileSync, spawn } from 'node:child_process';

export type Child = ReturnType<typeof spawn>;

/** `ip ARGS…`, its stdout; throws with stderr on failure. */
export function ip(...args: string[]): string {
  return execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

/** A runner of `ip netns exec NS ARGS…` that records every child in `children` (for cleanup) and resolves with its exit code and output (−1 on timeout, after SIGKILL). */
export function nsRunner(children: Child[], defaultTimeoutMs: number) {
  return (ns: string, args: string[], timeoutMs = defaultTimeoutMs): Promise<{ code: number | null; out: string }> => {
    const p = spawn('ip', ['netns', 'exec', ns, ...args]);
    children.push(p);
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        p.kill('SIGKILL');
        resolve({ code: -1, out });
      }, timeoutMs);
      p.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, out });
      });
    });
  };
}

/** Poll `pred` every 20 ms for up to `ms`. */
export async function waitFor(pred: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return pred();
}

/**
 * Two fresh namespaces (lo up, IPv6 off so no router solicitations or MLD
 * reach the wire) joined by a veth pair `pa0` (in a) ↔ `pb0` (in b), both up.
 * The namespaces are added to `track` for cleanup.
 */
export function vethPair(a: string, b: string, track: Set<string>): void {
  for (const ns of [a, b]) {
    ip('netns', 'add', ns);
    track.add(ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  }
  ip('-n', a, 'link', 'add', 'pa0', 'type', 'veth', 'peer', 'name', 'pb0', 'netns', b);
  ip('-n', a, 'link', 'set', 'pa0', 'up');
  ip('-n', b, 'link', 'set', 'pb0', 'up');
}
