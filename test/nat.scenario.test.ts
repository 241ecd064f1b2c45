/**
 * Router and NAT end to end: a lab "outside" namespace behind usernet's
 * uplink TAP (192.0.2.1, usernet is 192.0.2.2), and a "far" namespace one
 * more hop away (198.51.100.2, via the outside namespace as router). Real
 * TCP/UDP/ICMP from containers out, from outside in (published ports),
 * hairpin, internal networks, ICC off, egress choice, ICMP errors through
 * NAT, conntrack listing and bad -p input. Needs root (CI is root).
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { blobRoundTrip } from './blob.js';
import { DaemonUnderTest, listNetns, requireRoot, ROOT, servePeer } from './harness.js';

const root = requireRoot('router/NAT scenario tests (uplink TAP, outside namespace, published ports)');
const FIX = join(ROOT, 'test', 'fixtures');

describe.runIf(root)('router and NAT with real traffic', () => {
  const d = new DaemonUnderTest('nat');
  d.daemonArgs = ['--uplink', 'tap:unup0,ip=192.0.2.2/24,gw=192.0.2.1'];
  const outside = `${d.prefix}out`;
  const far = `${d.prefix}far`;
  const servers: ChildProcess[] = [];

  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const inNs = (ns: string, ...cmd: string[]) => spawnSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8', timeout: 20_000 });
  /** start a peer_server in a namespace and wait until it listens */
  const serve = (ns: string, proto: 'tcp' | 'udp', port: number, tag: string) => servePeer(servers, ns, proto, port, tag);
  /** peer_client from a namespace: the server's answer, or null when nothing came back */
  function ask(ns: string, proto: 'tcp' | 'udp', host: string, port: number): string | null {
    const r = inNs(ns, 'python3', join(FIX, 'peer_client.py'), proto, host, String(port));
    return r.status === 0 ? r.stdout.trim() : null;
  }
  const ctr = (name: string) => d.prefix + name;

  beforeAll(async () => {
    await d.start();
    // the lab's outside: the uplink TAP's kernel side, a server, and a router to "far"
    ip('netns', 'add', outside);
    ip('netns', 'add', far);
    ip('-n', d.hostNs, 'link', 'set', 'unup0', 'netns', outside);
    ip('-n', outside, 'addr', 'add', '192.0.2.1/24', 'dev', 'unup0');
    ip('-n', outside, 'link', 'set', 'unup0', 'up');
    ip('-n', outside, 'link', 'set', 'lo', 'up');
    ip('-n', outside, 'link', 'add', 'tofar', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', far);
    ip('-n', outside, 'addr', 'add', '198.51.100.1/24', 'dev', 'tofar');
    ip('-n', outside, 'link', 'set', 'tofar', 'up');
    ip('-n', far, 'addr', 'add', '198.51.100.2/24', 'dev', 'eth0');
    ip('-n', far, 'link', 'set', 'eth0', 'up');
    ip('-n', far, 'route', 'add', 'default', 'via', '198.51.100.1');
    inNs(outside, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1');
    await serve(outside, 'tcp', 7000, 'outside');
    await serve(outside, 'udp', 7001, 'outside');
    d.ok('network', 'create', '--subnet', '10.210.1.0/24', 'pub');
  });

  afterAll(async () => {
    for (const p of servers) if (p.exitCode === null) p.kill('SIGTERM');
    await d.cleanup(); // removes every namespace with the prefix (outside and far too)
    expect(listNetns().filter((n) => n.startsWith(d.prefix))).toEqual([]);
  });

  afterEach(() => {
    for (const name of ['c1', 'web1', 'web2', 'dns1', 'loc1', 's1', 'i1', 'i2', 'e1', 'other1'])
      if (d.cli('inspect', name).code === 0) d.cli('rm', '-f', name);
    for (const net of ['sealed', 'noicc', 'aa-int', 'mm', 'zz', 'other']) d.cli('network', 'rm', net);
  });

  it('masquerades outbound TCP and UDP: the outside server sees the uplink address', () => {
    d.ok('run', '--name', 'c1', '--network', 'pub');
    expect(ask(ctr('c1'), 'tcp', '192.0.2.1', 7000)).toMatch(/^outside 192\.0\.2\.2:\d+$/);
    expect(ask(ctr('c1'), 'udp', '192.0.2.1', 7001)).toMatch(/^outside 192\.0\.2\.2:\d+$/);
    expect(d.ping('c1', '192.0.2.1')).toBe(true);
    const ct = d.ok('conntrack');
    expect(ct).toMatch(/tcp .*src=10\.210\.1\.2 dst=192\.0\.2\.1 sport=\d+ dport=7000 .*src=192\.0\.2\.1 dst=192\.0\.2\.2 sport=7000/);
    expect(ct).toMatch(/udp .*dport=7001/);
    const json = JSON.parse(d.ok('conntrack', '--json'));
    expect(json.some((f: any) => f.orig.dport === 7000)).toBe(true);
  });

  it('publishes ports: -p 8080:80 and -p 80 from the outside, /udp too', async () => {
    d.ok('run', '--name', 'web1', '--network', 'pub', '-p', '8080:80');
    await serve(ctr('web1'), 'tcp', 80, 'web1');
    // DNAT keeps the client's address, as Docker does
    expect(ask(outside, 'tcp', '192.0.2.2', 8080)).toMatch(/^web1 192\.0\.2\.1:\d+$/);
    expect(d.ok('port', 'web1').trim()).toBe('80/tcp -> 0.0.0.0:8080');

    d.ok('run', '--name', 'web2', '--network', 'pub', '-p', '80');
    await serve(ctr('web2'), 'tcp', 80, 'web2');
    const m = /-> 0\.0\.0\.0:(\d+)/.exec(d.ok('port', 'web2'));
    expect(m).not.toBe(null);
    expect(ask(outside, 'tcp', '192.0.2.2', Number(m![1]))).toMatch(/^web2 /);

    d.ok('run', '--name', 'dns1', '--network', 'pub', '-p', '5353:53/udp');
    await serve(ctr('dns1'), 'udp', 53, 'dns1');
    expect(ask(outside, 'udp', '192.0.2.2', 5353)).toMatch(/^dns1 192\.0\.2\.1:\d+$/);
    // a port nobody published is closed
    expect(ask(outside, 'tcp', '192.0.2.2', 8099)).toBe(null);
  });

  it('binds 127.0.0.1:8081 for the host only: reachable from the daemon namespace, not from outside', async () => {
    d.ok('run', '--name', 'loc1', '--network', 'pub', '-p', '127.0.0.1:8081:80');
    await serve(ctr('loc1'), 'tcp', 80, 'loc1');
    expect(ask(d.hostNs, 'tcp', '127.0.0.1', 8081)).toMatch(/^loc1 /);
    expect(ask(outside, 'tcp', '192.0.2.2', 8081)).toBe(null);
  });

  it("hairpin: containers reach their own and a neighbour's published port through the uplink address", async () => {
    d.ok('run', '--name', 'web1', '--network', 'pub', '-p', '8080:80');
    await serve(ctr('web1'), 'tcp', 80, 'web1');
    d.ok('run', '--name', 'c1', '--network', 'pub');
    expect(ask(ctr('web1'), 'tcp', '192.0.2.2', 8080)).toMatch(/^web1 /);
    expect(ask(ctr('c1'), 'tcp', '192.0.2.2', 8080)).toMatch(/^web1 /);
    d.ok('network', 'create', '--subnet', '10.210.9.0/24', 'other');
    d.ok('run', '--name', 'other1', '--network', 'other');
    expect(ask(ctr('other1'), 'tcp', '192.0.2.2', 8080)).toMatch(/^web1 /);
    // but never directly across networks
    expect(ask(ctr('other1'), 'tcp', '10.210.1.2', 80)).toBe(null);
  });

  it('internal networks: nothing out, nothing published', () => {
    d.ok('network', 'create', '--internal', '--subnet', '10.210.2.0/24', 'sealed');
    d.ok('run', '--name', 's1', '--network', 'sealed');
    expect(ask(ctr('s1'), 'tcp', '192.0.2.1', 7000)).toBe(null);
    expect(d.ping('s1', '192.0.2.1', 1)).toBe(false);
    expect(d.ping('s1', '10.210.2.1', 1)).toBe(true); // its gateway still answers
    const r = d.cli('run', '--name', 'web9', '--network', 'sealed', '-p', '8090:80');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/internal network sealed/);
  });

  it('enable_icc=false: containers of the network cannot talk to each other, but reach the gateway and the outside', () => {
    d.ok('network', 'create', '--subnet', '10.210.3.0/24', '-o', 'com.docker.network.bridge.enable_icc=false', 'noicc');
    d.ok('run', '--name', 'i1', '--network', 'noicc');
    d.ok('run', '--name', 'i2', '--network', 'noicc');
    expect(d.ping('i1', '10.210.3.3', 1)).toBe(false);
    expect(d.ping('i1', '10.210.3.1', 1)).toBe(true);
    expect(ask(ctr('i2'), 'tcp', '192.0.2.1', 7000)).toMatch(/^outside 192\.0\.2\.2:/);
  });

  it('a container on several networks leaves through the first non-internal one by name', () => {
    d.ok('network', 'create', '--internal', '--subnet', '10.210.4.0/24', 'aa-int');
    d.ok('network', 'create', '--subnet', '10.210.5.0/24', 'mm');
    d.ok('network', 'create', '--subnet', '10.210.6.0/24', 'zz');
    d.ok('run', '--name', 'e1', '--network', 'zz');
    d.ok('network', 'connect', 'mm', 'e1');
    d.ok('network', 'connect', 'aa-int', 'e1');
    expect(d.exec('e1', 'ip', 'route', 'show', 'default').stdout).toMatch(/default via 10\.210\.5\.1 dev eth1/);
    expect(ask(ctr('e1'), 'tcp', '192.0.2.1', 7000)).toMatch(/^outside 192\.0\.2\.2:/);
    d.ok('network', 'disconnect', 'mm', 'e1');
    expect(d.exec('e1', 'ip', 'route', 'show', 'default').stdout).toMatch(/default via 10\.210\.6\.1 dev eth0/);
    expect(ask(ctr('e1'), 'tcp', '192.0.2.1', 7000)).toMatch(/^outside 192\.0\.2\.2:/);
  });

  it('TTL expiry and port unreachable come back through NAT (traceroute)', () => {
    d.ok('run', '--name', 'c1', '--network', 'pub');
    const ttl = d.exec('c1', 'ping', '-c', '1', '-t', '2', '-W', '2', '198.51.100.2');
    expect(ttl.stdout).toMatch(/From 192\.0\.2\.1 .*Time to live exceeded/);
    const tr = d.exec('c1', 'traceroute', '-n', '-q', '1', '-w', '2', '-m', '5', '198.51.100.2');
    const hops = tr.stdout
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/)[1]);
    expect(hops.slice(0, 3)).toEqual(['10.210.1.1', '192.0.2.1', '198.51.100.2']);
  });

  it('rejects bad -p specs and taken ports with one clear line, changing nothing', () => {
    d.ok('run', '--name', 'web1', '--network', 'pub', '-p', '8080:80');
    const before = d.ok('ps') + d.ok('port', 'web1') + listNetns().join(',');
    for (const [spec, msg] of [
      ['99999:80', /out of range/],
      ['abc', /not a number/],
      ['8080:80/sctp', /tcp or udp/],
      ['8080:80', /port is already allocated/],
    ] as const) {
      const r = d.cli('run', '--name', 'web9', '--network', 'pub', '-p', spec);
      expect(r.code, spec).not.toBe(0);
      expect(r.stderr.trim().split('\n').length).toBe(1);
      expect(r.stderr).toMatch(msg);
    }
    expect(d.ok('ps') + d.ok('port', 'web1') + listNetns().join(',')).toBe(before);
  });
});

describe.runIf(root)('uplink over an existing interface (AF_PACKET)', () => {
  const d = new DaemonUnderTest('upi');
  d.daemonArgs = ['--uplink', 'iface:unupv,ip=192.0.2.2/24,gw=192.0.2.1'];
  const outside = `${d.prefix}out`;
  const servers: ChildProcess[] = [];
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

  beforeAll(async () => {
    // the interface exists before the daemon starts: a veth from the daemon's namespace to the outside
    ip('netns', 'add', d.hostNs);
    ip('netns', 'add', outside);
    ip('-n', d.hostNs, 'link', 'add', 'unupv', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outside);
    ip('-n', d.hostNs, 'link', 'set', 'unupv', 'up');
    ip('-n', outside, 'addr', 'add', '192.0.2.1/24', 'dev', 'eth0');
    ip('-n', outside, 'link', 'set', 'eth0', 'up');
    // the outside keeps its kernel's offloads (TSO on the veth): usernet reads its super-frames whole
    await d.start();
    d.ok('network', 'create', '--subnet', '10.211.0.0/24', 'pub');
    const p = spawn('ip', ['netns', 'exec', outside, 'iperf3', '-s', '-p', '5201'], { stdio: 'ignore' });
    servers.push(p);
    await new Promise((r) => setTimeout(r, 300));
  });

  afterAll(async () => {
    for (const p of servers) if (p.exitCode === null) p.kill('SIGTERM');
    await d.cleanup();
    expect(listNetns().filter((n) => n.startsWith(d.prefix))).toEqual([]);
  });

  it('masquerades a bulk TCP transfer out through the interface, and publishes a port on it', async () => {
    d.ok('run', '--name', 'c1', '--network', 'pub', '-p', '8080:80');
    const r = spawnSync('ip', ['netns', 'exec', d.prefix + 'c1', 'iperf3', '-c', '192.0.2.1', '-t', '1', '-J'], { encoding: 'utf8', timeout: 20_000 });
    const j = JSON.parse(r.stdout);
    expect(j.error).toBeUndefined();
    expect(j.end.sum_received.bytes).toBeGreaterThan(1_000_000);
    // the published port answers on usernet's address on the interface
    const srv = spawn('ip', ['netns', 'exec', d.prefix + 'c1', 'python3', join(FIX, 'peer_server.py'), 'tcp', '80', 'c1'], { stdio: ['ignore', 'pipe', 'ignore'] });
    servers.push(srv);
    await new Promise<void>((resolve) => srv.stdout!.on('data', () => resolve()));
    const a = spawnSync('ip', ['netns', 'exec', outside, 'python3', join(FIX, 'peer_client.py'), 'tcp', '192.0.2.2', '8080'], { encoding: 'utf8' });
    expect(a.stdout.trim()).toMatch(/^c1 192\.0\.2\.1:\d+$/);
    // super-frames both ways through the interface: 8 MB each way, intact, out (NAT) and in (published port)
    await blobRoundTrip(servers, d.prefix + 'c1', outside, '192.0.2.1', 9200, 8 << 20);
    d.ok('run', '--name', 'c2', '--network', 'pub', '-p', '8081:9201');
    await blobRoundTrip(servers, outside, d.prefix + 'c2', '192.0.2.2', 8081, 8 << 20, 9201);
  }, 60_000);
});
