/**
 * What the daemon may touch, and what it refuses (issue 11, items 5, 6, 12):
 * namespaces it did not make, a second daemon on its state directory,
 * subnets on its own links and special ranges, a bad --log-level, a failed
 * start, `capture -w` to a path that cannot be written, and SIGTERM while a
 * request is being carried out. Real daemons in namespaces; needs root.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, DaemonUnderTest, listNetns, requireRoot } from '../harness.js';

const root = requireRoot('ownership, lock and reserved-subnet scenario tests');

/** `usernet daemon …` in the lab's host namespace, run to its end (for daemons that must refuse to start). */
function daemonOnce(d: DaemonUnderTest, ...args: string[]) {
  return spawnSync('nsenter', [`--net=/run/netns/${d.hostNs}`, '--', process.execPath, CLI, ...args], { encoding: 'utf8', timeout: 30_000 });
}

describe.runIf(root)('usernet removes only what it made, and refuses what collides with its own links', () => {
  const d = new DaemonUnderTest('own');
  d.daemonArgs = ['--uplink', 'tap:unup0,ip=192.0.2.2/24,gw=192.0.2.1'];
  const outside = `${d.prefix}out`;
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

  beforeAll(async () => {
    await d.start();
    ip('netns', 'add', outside);
    ip('-n', d.hostNs, 'link', 'set', 'unup0', 'netns', outside);
    ip('-n', outside, 'addr', 'add', '192.0.2.1/24', 'dev', 'unup0');
    ip('-n', outside, 'link', 'set', 'unup0', 'up');
    d.ok('network', 'create', '--subnet', '10.211.1.0/24', 'lan');
    d.ok('run', '--name', 'ca', '--network', 'lan');
    d.ok('run', '--name', 'cb', '--network', 'lan');
  });
  afterAll(async () => {
    await d.cleanup();
    expect(listNetns().filter((n) => n.startsWith(d.prefix))).toEqual([]);
  });

  it('refuses a container whose namespace exists and is not its own, and deletes nothing', () => {
    const marker = ip('-n', outside, '-o', 'addr', 'show', 'dev', 'unup0');
    const r = d.cli('run', '--name', 'out', '--network', 'lan');
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`namespace ${outside} already exists and was not made by this usernet daemon`);
    expect(listNetns()).toContain(outside);
    expect(ip('-n', outside, '-o', 'addr', 'show', 'dev', 'unup0')).toBe(marker); // the same namespace, untouched
    expect(d.ok('ps')).not.toMatch(/\bout\b/);
    // `run --name host` would be the daemon's own namespace
    const h = d.cli('run', '--name', 'host', '--network', 'lan');
    expect(h.code).not.toBe(0);
    expect(h.stderr).toContain(`namespace ${d.hostNs} already exists and was not made by this usernet daemon`);
    expect(existsSync(`/run/netns/${d.hostNs}`)).toBe(true);
    // the daemon still runs in it: the uplink still answers, containers still talk
    expect(spawnSync('ip', ['netns', 'exec', outside, 'ping', '-c', '1', '-W', '2', '192.0.2.2']).status).toBe(0);
    expect(d.ping('ca', '10.211.1.3')).toBe(true);
  });

  it('refuses a second daemon on the same state directory, and the first keeps its containers', () => {
    const before = readFileSync(join(d.stateDir, 'state.json'), 'utf8');
    const sock2 = join(d.dir, 'second.sock');
    const r = daemonOnce(d, '--socket', sock2, 'daemon', '--state-dir', d.stateDir, '--netns-prefix', d.prefix, '--log-level', 'info');
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toMatch(new RegExp(`^usernet: state directory .* is in use by another usernet daemon \\(pid ${d.proc!.pid}\\); give this one its own --state-dir$`));
    expect(existsSync(sock2)).toBe(false);
    expect(readFileSync(join(d.stateDir, 'state.json'), 'utf8')).toBe(before);
    expect(listNetns()).toEqual(expect.arrayContaining([`${d.prefix}ca`, `${d.prefix}cb`]));
    expect(d.ping('ca', '10.211.1.3')).toBe(true);
  });

  it.each([
    ['192.0.2.0/24', "overlaps with usernet's uplink unup0 (192.0.2.0/24)"],
    ['192.0.2.128/25', "overlaps with usernet's uplink unup0 (192.0.2.0/24)"],
    ['198.19.255.252/30', "overlaps with usernet's host link (198.19.255.252/30)"],
    ['127.0.0.0/8', 'overlaps with the loopback range 127.0.0.0/8'],
    ['224.0.0.0/4', 'overlaps with the multicast range 224.0.0.0/4'],
    ['169.254.0.0/16', 'overlaps with the link-local range 169.254.0.0/16'],
    ['0.0.0.0/8', 'overlaps with 0.0.0.0/8'],
  ])('refuses a network on %s with one line, and changes nothing', (subnet, msg) => {
    const before = d.ok('network', 'ls');
    const r = d.cli('network', 'create', '--subnet', subnet, 'bad');
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(msg);
    expect(d.ok('network', 'ls')).toBe(before);
  });

  it('refuses the same subnets in compose, and later networks still come up (the host link route is intact)', () => {
    const file = join(d.dir, 'compose.yml');
    writeFileSync(file, 'services:\n  web:\n    networks: [n]\nnetworks:\n  n:\n    ipam:\n      config:\n        - subnet: 198.19.255.252/30\n');
    const r = d.cli('up', '-f', file, '-p', 'bad');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("overlaps with usernet's host link");
    expect(d.ok('network', 'ls')).not.toContain('bad_n');
    expect(ip('-n', d.hostNs, 'route', 'show', '198.19.255.252/30')).toContain('198.19.255.252/30');
    d.ok('network', 'create', '--subnet', '10.211.2.0/24', 'later');
    d.ok('run', '--name', 'cc', '--network', 'later');
    // the daemon's namespace reaches the new network through the host link
    expect(spawnSync('ip', ['netns', 'exec', d.hostNs, 'ping', '-c', '1', '-W', '2', '10.211.2.2']).status).toBe(0);
  });

  it('the default pool never hands out the uplink subnet', async () => {
    const lab = new DaemonUnderTest('pool');
    lab.daemonArgs = ['--uplink', 'tap:unup1,ip=172.18.0.2/16'];
    try {
      await lab.start();
      lab.ok('network', 'create', 'p1');
      const [j] = JSON.parse(lab.ok('network', 'inspect', 'p1'));
      expect(j.IPAM.Config[0].Subnet).toBe('172.19.0.0/16');
    } finally {
      await lab.cleanup();
    }
  });

  it('capture -w to a path that cannot be written: one line, no stack trace', () => {
    const r = d.cli('capture', 'lan', '-c', '1', '-w', '/nonexistent/x.pcap');
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('usernet: cannot write /nonexistent/x.pcap: no such directory');
  });
});

describe.runIf(root)('daemon start-up and shutdown', () => {
  const d = new DaemonUnderTest('life');

  afterAll(async () => {
    await d.cleanup();
    expect(listNetns().filter((n) => n.startsWith(d.prefix))).toEqual([]);
  });

  it('a bad --log-level is one clear line, and touches nothing', () => {
    const dir = join(d.dir, 'never');
    const r = spawnSync(process.execPath, [CLI, '--socket', join(d.dir, 's'), 'daemon', '--state-dir', dir, '--log-level', 'loud'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe('usernet: invalid --log-level "loud": one of fatal, error, warn, info, debug, trace, silent');
    expect(existsSync(dir)).toBe(false);
  });

  it('a daemon that fails to start leaves no state directory behind', () => {
    execFileSync('ip', ['netns', 'add', d.hostNs]);
    const dir = join(d.dir, 'fresh', 'state');
    const r = daemonOnce(d, '--socket', join(d.dir, 's'), 'daemon', '--state-dir', dir, '--netns-prefix', d.prefix, '--uplink', 'iface:nosuch0,ip=192.0.2.2/24');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^usernet: .*nosuch0/m);
    expect(existsSync(join(d.dir, 'fresh'))).toBe(false);
    expect(existsSync(join(d.dir, 's'))).toBe(false);
  });

  it('SIGTERM while `run` is being carried out: the client gets the answer, and the state agrees with it', async () => {
    await d.start();
    d.ok('network', 'create', '--subnet', '10.212.1.0/24', 'n');
    const answers: { name: string; code: number | null; err: string }[] = [];
    const run = (name: string) => {
      const p = spawn(process.execPath, [CLI, '--socket', d.socket, 'run', '--name', name, '--network', 'n'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      p.stderr!.on('data', (b) => (err += b));
      return new Promise<void>((resolve) => p.on('exit', (code) => (answers.push({ name, code, err }), resolve())));
    };
    const runs = ['r1', 'r2', 'r3'].map(run);
    // the first run is under way (its namespace exists) when the daemon is told to stop
    const t0 = Date.now();
    while (!listNetns().some((n) => n.startsWith(`${d.prefix}r`)) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 5));
    d.proc!.kill('SIGTERM');
    // and clients keep coming while it stops: each is told so (or finds no daemon), none is cut off
    for (const name of ['l1', 'l2', 'l3', 'l4']) {
      runs.push(run(name));
      await new Promise((r) => setTimeout(r, 40));
    }
    await Promise.all(runs);
    await d.stop();
    for (const a of answers) expect(a.err).not.toMatch(/socket hang up|ECONNRESET/);
    const made = answers.filter((a) => a.code === 0).map((a) => a.name);
    const refused = answers.filter((a) => a.code !== 0);
    expect(made.length).toBeGreaterThanOrEqual(1);
    for (const a of refused) expect(a.err.trim()).toMatch(/shutting down; nothing was changed|cannot connect to the usernet daemon|closed the connection without an answer: it is stopping/);
    // what the clients were told is what comes back
    await d.start();
    const ps = d.ok('ps');
    for (const a of answers) expect(ps.includes(a.name)).toBe(made.includes(a.name));
    for (const name of made) expect(d.ping(name, '10.212.1.1')).toBe(true);
  });
});

