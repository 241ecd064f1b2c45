/**
 * A lab for the conntrack flood tests: a daemon (its conntrack capacity set
 * through USERNET_CONNTRACK_CAPACITY) with an uplink TAP whose kernel side
 * is the "outside" namespace (192.0.2.1; usernet is 192.0.2.2), a network
 * `pub` (10.211.1.0/24) with a container `web` publishing 8080 → 80 where
 * an echo server listens, and a bounded spoofed SYN flood from outside.
 *
 * The flood's sources are 198.51.100.1–254 (TEST-NET-2), a range that
 * exists only in this lab: usernet answers them through its default route
 * (the outside namespace), where a blackhole route drops the answers — so
 * every SYN the container answers leaves a SYN_RECV flow that nobody
 * completes, as a real spoofed flood does. Everything stays inside the
 * lab's namespaces; cleanup() removes them all, and kills by pid.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { DaemonUnderTest, ROOT, servePeer } from '../harness.js';
import { Client } from '../../src/control/client.js';

export const FIX = join(ROOT, 'test', 'fixtures');
export const UPLINK_IP = '192.0.2.2';
export const OUTSIDE_IP = '192.0.2.1';
export const SPOOF_NET = '198.51.100';

export class FloodLab {
  readonly d: DaemonUnderTest;
  readonly outside: string;
  readonly kids: ChildProcess[] = [];

  constructor(tag: string) {
    this.d = new DaemonUnderTest(tag);
    this.d.daemonArgs = ['--uplink', `tap:unup0,ip=${UPLINK_IP}/24,gw=${OUTSIDE_IP}`];
    this.outside = `${this.d.prefix}out`;
  }

  ctr(name: string): string {
    return this.d.prefix + name;
  }

  /** Daemon with `capacity` conntrack flows, the outside namespace, `pub` and `web` with its echo server. */
  async start(capacity: number): Promise<void> {
    const prev = process.env.USERNET_CONNTRACK_CAPACITY;
    process.env.USERNET_CONNTRACK_CAPACITY = String(capacity);
    try {
      await this.d.start();
    } finally {
      if (prev === undefined) delete process.env.USERNET_CONNTRACK_CAPACITY;
      else process.env.USERNET_CONNTRACK_CAPACITY = prev;
    }
    const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    ip('netns', 'add', this.outside);
    ip('-n', this.d.hostNs, 'link', 'set', 'unup0', 'netns', this.outside);
    ip('-n', this.outside, 'addr', 'add', `${OUTSIDE_IP}/24`, 'dev', 'unup0');
    ip('-n', this.outside, 'link', 'set', 'unup0', 'up');
    ip('-n', this.outside, 'link', 'set', 'lo', 'up');
    ip('-n', this.outside, 'route', 'add', 'blackhole', `${SPOOF_NET}.0/24`);
    this.d.ok('network', 'create', '--subnet', '10.211.1.0/24', 'pub');
    this.d.ok('run', '--name', 'web', '--network', 'pub', '-p', '8080:80');
    await this.serveEcho(this.ctr('web'), 80);
  }

  /** test/fixtures/echo_server.py in a namespace; resolves once it listens. */
  async serveEcho(ns: string, port: number): Promise<void> {
    const p = spawn('ip', ['netns', 'exec', ns, 'python3', join(FIX, 'echo_server.py'), String(port)], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.kids.push(p);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('echo server did not start')), 5000);
      p.stdout!.on('data', (b) => {
        if (String(b).includes('ready')) {
          clearTimeout(t);
          resolve();
        }
      });
    });
  }

  servePeer(ns: string, proto: 'tcp' | 'udp', port: number, tag: string): Promise<void> {
    return servePeer(this.kids, ns, proto, port, tag);
  }

  /** A bounded spoofed SYN flood from outside to the published port (rate: SYNs a second, 0 = unpaced); resolves with the SYNs sent. */
  flood(count: number, seconds: number, rate = 0): Promise<number> {
    const p = spawn('ip', ['netns', 'exec', this.outside, 'python3', join(FIX, 'syn_flood.py'), UPLINK_IP, '8080', String(count), String(seconds), SPOOF_NET, String(rate)], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.kids.push(p);
    let out = '';
    p.stdout!.on('data', (b) => (out += b));
    p.stderr!.on('data', (b) => (out += b));
    return new Promise((resolve, reject) => {
      p.on('exit', (code) => {
        const m = /sent (\d+)/.exec(out);
        if (code === 0 && m) resolve(Number(m[1]));
        else reject(new Error(`syn_flood.py failed (${code}): ${out}`));
      });
    });
  }

  /** Run a command in a namespace (bounded). */
  inNs(ns: string, timeoutMs: number, ...cmd: string[]) {
    return spawnSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8', timeout: timeoutMs });
  }

  client(): Client {
    return new Client(this.d.socket);
  }

  /** conntrack flows and capacity, from the daemon's stats */
  async conntrack(): Promise<{ flows: number; capacity: number }> {
    const r = await this.client().request<{ conntrack: { flows: number; capacity: number } }>('GET', '/stats');
    return r.conntrack;
  }

  async cleanup(): Promise<void> {
    for (const p of this.kids) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await this.d.cleanup();
  }
}
