/**
 * Layer-2 floods (issue 11, items 3 and 4) with real frames through a real
 * daemon. Needs root.
 *
 * (a) MAC flood: container A sends more frames with random source MACs than
 *     the switch's MAC table holds (8192). Without pinning and port limits
 *     the table fills, a newcomer C's MAC is never learned, and B→C unicast
 *     is flooded to every port: A would capture it. Now C's MAC is pinned
 *     at plug and A's port learns at most its limit: A sees no frame
 *     addressed to C, B and C ping each other, B still reaches the gateway.
 * (b) ARP flood: container X on a /16 asks the gateway thousands of times
 *     "who-has <gateway> tell <random address>": the router learns every
 *     asker (a request addressed to it), which used to fill the one shared
 *     ARP cache for ~60 s, so nobody on another network could get an entry:
 *     a newcomer N on another network was answered by neither the outside
 *     (its ping replies) nor a published port. Now X's network churns only
 *     its own quota and N's address is a permanent neighbour: while the
 *     flood runs, N pings the outside through NAT and the outside reaches
 *     N's published port within a few seconds.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonUnderTest, listNetns, requireRoot, ROOT, servePeer } from '../harness.js';

const root = requireRoot('L2 flood scenario tests (MAC flood, ARP flood; uplink TAP, outside namespace)');
const FIX = join(ROOT, 'test', 'fixtures');
const FLOOD = join(FIX, 'l2_flood.py');

describe.runIf(root)('floods from one container do not let it sniff or starve others', () => {
  const d = new DaemonUnderTest('l2f');
  d.daemonArgs = ['--uplink', 'tap:unup0,ip=192.0.2.2/24,gw=192.0.2.1'];
  const outside = `${d.prefix}out`;
  const procs: ChildProcess[] = [];
  const ns = (name: string) => d.prefix + name;
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const inNs = (n: string, ...cmd: string[]) => spawnSync('ip', ['netns', 'exec', n, ...cmd], { encoding: 'utf8', timeout: 30_000 });
  const macOf = (name: string) => inNs(ns(name), 'cat', '/sys/class/net/eth0/address').stdout.trim();
  const stats = () => JSON.parse(d.ok('stats', '--json'));
  const net = (s: any, name: string) => s.networks.find((n: any) => n.name === name);

  /** a fixture in a namespace, in the background; resolves with its stdout when it ends (it always ends by itself) */
  function background(n: string, args: string[], ready = false): { ready: Promise<void>; done: Promise<string> } {
    const p = spawn('ip', ['netns', 'exec', n, 'python3', FLOOD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(p);
    let out = '';
    let err = '';
    let onReady: () => void = () => undefined;
    const r = new Promise<void>((res) => (onReady = res));
    p.stdout!.on('data', (b) => {
      out += b;
      if (out.includes('ready')) onReady();
    });
    p.stderr!.on('data', (b) => (err += b));
    const done = new Promise<string>((res, rej) =>
      p.on('exit', (code) => (code === 0 ? res(out.replace('ready\n', '').trim()) : rej(new Error(`l2_flood ${args[0]} failed (${code}): ${err}`)))),
    );
    if (!ready) onReady();
    return { ready: r, done };
  }

  beforeAll(async () => {
    await d.start();
    ip('netns', 'add', outside);
    ip('-n', d.hostNs, 'link', 'set', 'unup0', 'netns', outside);
    ip('-n', outside, 'addr', 'add', '192.0.2.1/24', 'dev', 'unup0');
    ip('-n', outside, 'link', 'set', 'unup0', 'up');
    ip('-n', outside, 'link', 'set', 'lo', 'up');
  });

  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await d.cleanup(); // every namespace with the prefix (containers, outside)
    expect(listNetns().filter((n) => n.startsWith(d.prefix))).toEqual([]);
  });

  it('MAC flood: a newcomer’s traffic is not flooded to the attacker; pings between B and C work', async () => {
    d.ok('network', 'create', '--subnet', '10.212.1.0/24', 'l2');
    d.ok('run', '--name', 'fa', '--network', 'l2');
    d.ok('run', '--name', 'fb', '--network', 'l2');
    expect(d.ping('fb', '10.212.1.1')).toBe(true); // B and the gateway learned / known
    expect(d.ping('fa', '10.212.1.1')).toBe(true);
    const gwMac = /lladdr (\S+)/.exec(inNs(ns('fa'), 'ip', 'neigh', 'show', '10.212.1.1').stdout)?.[1];
    expect(gwMac).toMatch(/^02:/);
    // more random source MACs than the table holds (8192), to the gateway's MAC (dropped there)
    const flood = await background(ns('fa'), ['macflood', 'eth0', '12000', gwMac!]).done;
    expect(flood).toBe('sent 12000');
    const during = net(stats(), 'l2');
    // the flood reached the switch and was held to A's share
    expect(during.mac.portLimitHits).toBeGreaterThan(8000);
    expect(during.mac.dynamic).toBeLessThanOrEqual(during.mac.portLimit + 2);
    expect(during.mac.macTableFull).toBe(0);

    d.ok('run', '--name', 'fc', '--network', 'l2');
    const cMac = macOf('fc');
    expect(cMac).toMatch(/^02:42:0a:d4:01:/);
    const cap = background(ns('fa'), ['count', 'eth0', cMac, '4'], true);
    await cap.ready;
    expect(d.ping('fb', '10.212.1.4', 5)).toBe(true); // B → C (C is .4: A .2, B .3)
    expect(d.ping('fc', '10.212.1.3', 3)).toBe(true); // C → B
    expect(d.ping('fb', '10.212.1.1', 2)).toBe(true); // established neighbours still work
    expect(Number(await cap.done)).toBe(0); // A saw nothing addressed to C
    const after = net(stats(), 'l2');
    expect(after.mac.static).toBeGreaterThanOrEqual(4); // gateway + A, B, C pinned
    d.ok('rm', '-f', 'fa', 'fb', 'fc');
    d.ok('network', 'rm', 'l2');
  });

  it('ARP flood on a /16: a newcomer on another network reaches the outside, and the outside its published port, at once', async () => {
    d.ok('network', 'create', '--subnet', '10.213.0.0/16', 'big');
    d.ok('network', 'create', '--subnet', '10.214.1.0/24', 'other');
    d.ok('run', '--name', 'ax', '--network', 'big');
    // 6000 askers over ~5 s (more than the router's whole cache, 1024)
    const flood = background(ns('ax'), ['arpflood', 'eth0', '6000', '10.213.0.1', '10.213.0.0/16', '5']);
    await new Promise((r) => setTimeout(r, 1500)); // well into the flood: the cache would be full by now
    d.ok('run', '--name', 'an', '--network', 'other', '-p', '8080:80');
    await servePeer(procs, ns('an'), 'tcp', 80, 'an');
    const t0 = Date.now();
    const ping = inNs(ns('an'), 'ping', '-c', '1', '-W', '3', '192.0.2.1');
    expect(ping.status, ping.stdout).toBe(0);
    const r = inNs(outside, 'python3', join(FIX, 'peer_client.py'), 'tcp', '192.0.2.2', '8080');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toMatch(/^an 192\.0\.2\.1:\d+$/);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(await flood.done).toBe('sent 6000');
    const s = stats();
    // the flood was real, and held to its network's quota
    expect(s.routerEvents.arpQuotaEvicted).toBeGreaterThan(3000);
    expect(net(s, 'big').arp.dynamic).toBeLessThanOrEqual(s.routerEvents.arpIfaceQuota);
    expect(net(s, 'other').arp.static).toBe(1);
    expect(s.routerEvents.arpTableFull).toBe(0);
    // the table shows it
    const table = d.ok('stats');
    expect(table).toMatch(/ARP QUOTA HITS/);
    expect(table).toMatch(/quota evictions [1-9]\d*/);
    d.ok('rm', '-f', 'ax', 'an');
    d.ok('network', 'rm', 'big', 'other');
  });
});
