/**
 * Compose end to end: the seeds' three compose files brought up with
 * `usernet up` through a real daemon, real pings between the services'
 * namespaces, errors that leave nothing behind, and `usernet down`.
 * Needs root (CI is root).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonUnderTest, listNetns, requireRoot, ROOT } from './harness.js';

const root = requireRoot('compose scenario tests (usernet up/down with real traffic)');
const FIX = join(ROOT, 'test', 'fixtures', 'compose');

describe.runIf(root)('usernet up / down', () => {
  const d = new DaemonUnderTest('cmp');
  const ipOn = (ctr: string, net: string): string => JSON.parse(d.ok('inspect', ctr))[0].NetworkSettings.Networks[net].IPAddress;

  beforeAll(async () => {
    await d.start();
  });
  afterAll(async () => {
    await d.cleanup();
    expect(listNetns().filter((n) => n.startsWith(d.prefix))).toEqual([]);
  });

  it('the default network: every service joins <project>_default and reaches the others', () => {
    const out = d.ok('up', '-f', join(FIX, 'default.yml'), '-p', 'shop');
    expect(out).toMatch(/Network shop_default\s+Created/);
    expect(d.ok('ps')).toMatch(/shop-web-1/);
    expect(d.ping('shop-app-1', ipOn('shop-db-1', 'shop_default'))).toBe(true);
    expect(d.ping('shop-web-1', ipOn('shop-app-1', 'shop_default'))).toBe(true);
    expect(d.ok('port', 'shop-web-1').trim()).toBe('80/tcp -> 0.0.0.0:80');
    d.ok('down', '-p', 'shop');
    expect(d.ok('ps', '-q').trim()).toBe('');
    expect(d.ok('network', 'ls')).not.toMatch(/shop_default/);
    expect(listNetns().filter((n) => n.startsWith(d.prefix + 'shop'))).toEqual([]);
  });

  it("frontend/backend: web↔app and app↔db, never web↔db", () => {
    d.ok('up', '-f', join(FIX, 'frontend-backend.yml'), '-p', 'seeds');
    const appFront = ipOn('seeds-app-1', 'seeds_frontend_network');
    const dbBack = ipOn('seeds-db-1', 'seeds_backend_network');
    expect(d.ping('seeds-web-1', appFront)).toBe(true);
    expect(d.ping('seeds-app-1', dbBack)).toBe(true);
    expect(d.ping('seeds-web-1', dbBack, 1)).toBe(false);
    // up again recreates the containers, same plan, same result
    d.ok('up', '-f', join(FIX, 'frontend-backend.yml'), '-p', 'seeds');
    expect(d.ping('seeds-app-1', ipOn('seeds-db-1', 'seeds_backend_network'))).toBe(true);
    d.ok('down', '-p', 'seeds');
    expect(d.ok('network', 'ls')).not.toMatch(/seeds_/);
  });

  it('an external network must exist; down leaves it alone', () => {
    const before = d.ok('network', 'ls') + d.ok('ps');
    const r = d.cli('up', '-f', join(FIX, 'external.yml'), '-p', 'ext');
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n').length).toBe(1);
    expect(r.stderr).toMatch(/external\.yml: networks\.existing_network: network existing_network declared as external, but could not be found/);
    expect(d.ok('network', 'ls') + d.ok('ps')).toBe(before);
    d.ok('network', 'create', '--subnet', '10.220.0.0/24', 'existing_network');
    d.ok('run', '--name', 'peer', '--network', 'existing_network');
    d.ok('up', '-f', join(FIX, 'external.yml'), '-p', 'ext');
    expect(d.ping('ext-my_service-1', '10.220.0.2')).toBe(true);
    d.ok('down', '-p', 'ext');
    expect(d.ok('network', 'ls')).toMatch(/existing_network/);
    d.ok('rm', '-f', 'peer');
    d.ok('network', 'rm', 'existing_network');
  });

  it('a bad compose file names the file and the key, and brings nothing up', () => {
    const dir = mkdtempSync(join(tmpdir(), 'usernet-compose-'));
    const file = join(dir, 'compose.yml');
    writeFileSync(
      file,
      [
        'services:',
        '  web:',
        '    image: nginx',
        '    networks: [front]',
        '  db:',
        '    image: postgres',
        '    networks:',
        '      back:',
        '        ipv4_address: 10.9.9.9',
        'networks:',
        '  front: {}',
        '  back:',
        '    ipam:',
        '      config:',
        '        - subnet: 10.221.0.0/24',
      ].join('\n'),
    );
    const before = d.ok('network', 'ls') + d.ok('ps') + listNetns().join(',');
    const r = d.cli('up', '-f', file, '-p', 'broken');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/compose\.yml: services\.db\.networks\.back\.ipv4_address: .*10\.9\.9\.9/);
    expect(d.ok('network', 'ls') + d.ok('ps') + listNetns().join(',')).toBe(before);
  });

  it('network_mode service:NAME shares the service\'s namespace (and --network container:NAME)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'usernet-compose-'));
    const file = join(dir, 'compose.yml');
    writeFileSync(file, ['services:', '  web:', '    image: x', '  sidecar:', '    image: x', '    network_mode: service:web'].join('\n'));
    d.ok('up', '-f', file, '-p', 'side');
    const webIp = ipOn('side-web-1', 'side_default');
    expect(d.exec('side-sidecar-1', 'ip', '-o', '-4', 'addr', 'show', 'eth0').stdout).toContain(`inet ${webIp}/`);
    expect(JSON.parse(d.ok('inspect', 'side-sidecar-1'))[0].HostConfig.NetworkMode).toMatch(/^container:[0-9a-f]{64}$/);
    d.ok('run', '--name', 'side-extra', '--network', 'container:side-web-1');
    expect(d.exec('side-extra', 'ip', '-o', '-4', 'addr', 'show', 'eth0').stdout).toContain(`inet ${webIp}/`);
    const r = d.cli('rm', 'side-web-1');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/shares its network namespace/);
    d.ok('rm', 'side-extra');
    d.ok('down', '-p', 'side');
    expect(d.ok('ps', '-q').trim()).toBe('');
    expect(listNetns().filter((n) => n.startsWith(d.prefix + 'side'))).toEqual([]);
  });

  it('network_mode host and none', () => {
    const dir = mkdtempSync(join(tmpdir(), 'usernet-compose-'));
    const file = join(dir, 'compose.yml');
    writeFileSync(file, ['services:', '  h:', '    image: x', '    network_mode: host', '  n:', '    image: x', '    network_mode: none'].join('\n'));
    d.ok('up', '-f', file, '-p', 'modes');
    expect(d.exec('modes-n-1', 'ip', '-o', 'link', 'show').stdout.trim().split('\n').length).toBe(1); // lo only
    expect(d.exec('modes-h-1', 'ip', '-o', 'link', 'show').stdout).toMatch(/usernet\d+/); // the daemon's namespace
    d.ok('down', '-p', 'modes');
    expect(d.ok('ps', '-q').trim()).toBe('');
  });
});

describe.runIf(root)('embedded DNS', () => {
  const d = new DaemonUnderTest('dns');
  d.daemonArgs = ['--dns', '127.0.0.1:5353'];
  let upstream: ChildProcess | null = null;
  let upstreamLog = '';

  beforeAll(async () => {
    await d.start();
    // the upstream resolver lives in the daemon's own namespace
    upstream = spawn('ip', ['netns', 'exec', d.hostNs, process.execPath, join(ROOT, 'test', 'fixtures', 'dns_upstream.mjs'), '5353'], { stdio: ['ignore', 'pipe', 'ignore'], cwd: ROOT });
    upstream.stdout!.on('data', (b) => (upstreamLog += b));
    const t0 = Date.now();
    while (!upstreamLog.includes('ready') && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
    d.ok('up', '-f', join(FIX, 'frontend-backend.yml'), '-p', 'seeds');
  });
  afterAll(async () => {
    upstream?.kill('SIGTERM');
    d.cli('down', '-p', 'seeds');
    await d.cleanup();
    expect(listNetns().filter((n) => n.startsWith(d.prefix))).toEqual([]);
  });

  const getent = (ctr: string, name: string) => d.exec(ctr, 'getent', 'hosts', name);
  const dig = (ctr: string, ...args: string[]) => d.exec(ctr, 'dig', '+tries=1', '+time=2', '@127.0.0.11', ...args).stdout;

  it('resolves service and container names on shared networks only, with the shared network\'s address', () => {
    const appFront = JSON.parse(d.ok('inspect', 'seeds-app-1'))[0].NetworkSettings.Networks.seeds_frontend_network.IPAddress;
    const appBack = JSON.parse(d.ok('inspect', 'seeds-app-1'))[0].NetworkSettings.Networks.seeds_backend_network.IPAddress;
    expect(getent('seeds-web-1', 'app').stdout.split(/\s+/)[0]).toBe(appFront);
    expect(getent('seeds-db-1', 'app').stdout.split(/\s+/)[0]).toBe(appBack);
    expect(getent('seeds-app-1', 'seeds-db-1').code).toBe(0);
    expect(getent('seeds-web-1', 'db').code).not.toBe(0); // web and db share no network
    expect(dig('seeds-web-1', '+short', 'app').trim()).toBe(appFront);
    expect(dig('seeds-web-1', '+tcp', '+short', 'app').trim()).toBe(appFront);
    expect(dig('seeds-web-1', '+short', '-x', appFront).trim()).toBe('seeds-app-1.seeds_frontend_network.');
    // a TCP connection by name
    expect(d.ping('seeds-web-1', 'app')).toBe(true);
  });

  it('TCP by name, aliases with round robin', async () => {
    const srv = spawn('ip', ['netns', 'exec', d.prefix + 'seeds-db-1', 'python3', join(ROOT, 'test', 'fixtures', 'peer_server.py'), 'tcp', '5432', 'db'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      await new Promise<void>((r) => srv.stdout!.once('data', () => r()));
      const r = d.exec('seeds-app-1', 'python3', join(ROOT, 'test', 'fixtures', 'peer_client.py'), 'tcp', 'db', '5432');
      expect(r.stdout.trim()).toMatch(/^db /);
    } finally {
      srv.kill('SIGTERM');
    }
    d.ok('run', '--name', 'rr1', '--network', 'seeds_backend_network', '--alias', 'pool');
    d.ok('run', '--name', 'rr2', '--network', 'seeds_backend_network', '--alias', 'pool');
    try {
      const first = dig('seeds-app-1', '+short', 'pool').trim().split('\n');
      const second = dig('seeds-app-1', '+short', 'pool').trim().split('\n');
      expect(first.length).toBe(2);
      expect([...first].sort()).toEqual([...second].sort());
      expect(first).not.toEqual(second); // rotated
      expect(dig('seeds-web-1', '+short', 'pool').trim()).toBe(''); // not on web's network
    } finally {
      d.cli('rm', '-f', 'rr1', 'rr2');
    }
  });

  it('never forwards for a container only on internal networks', async () => {
    d.ok('network', 'create', '--internal', '--subnet', '10.222.0.0/24', 'sealed');
    d.ok('run', '--name', 'sealed1', '--network', 'sealed');
    try {
      await new Promise((r) => setTimeout(r, 100));
      const before = upstreamLog;
      const out = dig('sealed1', 'outside.example');
      expect(out).not.toMatch(/198\.51\.100\.7/);
      expect(out).toMatch(/status: (SERVFAIL|NXDOMAIN)/);
      await new Promise((r) => setTimeout(r, 200));
      expect(upstreamLog).toBe(before);
    } finally {
      d.cli('rm', '-f', 'sealed1');
      d.cli('network', 'rm', 'sealed');
    }
  });

  it('forwards other names upstream; NXDOMAIN when upstream has none', async () => {
    expect(dig('seeds-web-1', '+short', 'outside.example').trim()).toBe('198.51.100.7');
    await new Promise((r) => setTimeout(r, 200)); // let the upstream's log line be read
    expect(upstreamLog).toMatch(/query outside\.example/);
    expect(dig('seeds-web-1', 'nosuch.example')).toMatch(/status: NXDOMAIN/);
    // AAAA for a known name: an empty NOERROR, not forwarded
    const aaaa = dig('seeds-web-1', 'AAAA', 'app');
    expect(aaaa).toMatch(/status: NOERROR/);
    expect(aaaa).toMatch(/ANSWER: 0/);
  });
});
