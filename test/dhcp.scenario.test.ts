/**
 * DHCP on a bridge network with a real client: `usernet attach` makes a TAP
 * on the network, the test moves it into a namespace of its own and runs
 * busybox udhcpc (Debian's udhcpc package: its default script configures the
 * interface, the default route and resolv.conf). Needs root (CI is root) and
 * the busybox + udhcpc packages (scripts/setup.sh).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonUnderTest, listNetns, requireRoot } from './harness.js';

const root = requireRoot('DHCP scenario test (daemon, TAPs, namespaces, udhcpc)');
const haveUdhcpc = existsSync('/etc/udhcpc/default.script') && spawnSync('udhcpc', ['--help']).error === undefined;
if (root && !haveUdhcpc) console.warn('\n*** SKIPPED: DHCP scenario test needs udhcpc (apt-get install busybox udhcpc; scripts/setup.sh) ***\n');

function sh(cmd: string, ...args: string[]): { code: number; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status ?? -1, out: (r.stdout ?? '') + (r.stderr ?? '') };
}

describe.runIf(root && haveUdhcpc)('DHCP for attached endpoints', () => {
  const d = new DaemonUnderTest('dh');
  const vmNs = d.prefix + 'vm';
  const etcNetns = join('/etc/netns', vmNs);
  const inVm = (...cmd: string[]) => sh('ip', 'netns', 'exec', vmNs, ...cmd);

  beforeAll(async () => {
    await d.start();
  });
  afterAll(async () => {
    await d.cleanup();
    rmSync(etcNetns, { recursive: true, force: true });
    expect(listNetns().filter((n) => n.startsWith(d.prefix))).toEqual([]);
  });

  it('an attached TAP gets an address from the upper half, a default route and DNS, and reaches a container', async () => {
    d.ok('network', 'create', '--subnet', '10.230.0.0/24', 'lan');
    d.ok('run', '--name', 'c1', '--network', 'lan');
    expect(JSON.parse(d.ok('inspect', 'c1'))[0].NetworkSettings.Networks.lan.IPAddress).toBe('10.230.0.2');

    // errors: one line, nothing changed
    for (const [args, msg] of [
      [['attach', 'vm1', '--network', 'nope', '--tap', 'unvm0'], /network nope not found/],
      [['attach', 'vm1', '--network', 'lan', '--tap', 'bad/name'], /invalid interface name/],
      [['attach', 'vm1', '--network', 'lan', '--tap', 'lo'], /already exists/],
    ] as const) {
      const r = d.cli(...args);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(JSON.parse(d.ok('attachments', '--json'))).toEqual([]);

    expect(d.ok('attach', 'vm1', '--network', 'lan', '--tap', 'unvm0').trim()).toBe('unvm0');
    const dup = d.cli('attach', 'vm1', '--network', 'lan', '--tap', 'unvm1');
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/vm1 is already in use/);
    // the network is in use while the attachment exists
    expect(d.cli('network', 'rm', 'lan').stderr).toMatch(/active endpoints/);

    // move the TAP into a namespace of our own and ask for an address
    execFileSync('ip', ['netns', 'add', vmNs]);
    execFileSync('ip', ['-n', vmNs, 'link', 'set', 'lo', 'up']);
    execFileSync('ip', ['-n', d.hostNs, 'link', 'set', 'unvm0', 'netns', vmNs]);
    execFileSync('ip', ['-n', vmNs, 'link', 'set', 'unvm0', 'up']);
    // `ip netns exec` bind-mounts this over /etc/resolv.conf: the script writes here, not the host's
    mkdirSync(etcNetns, { recursive: true });
    writeFileSync(join(etcNetns, 'resolv.conf'), '');
    const dhcp = inVm('udhcpc', '-i', 'unvm0', '-n', '-q', '-t', '5', '-T', '1');
    expect(dhcp.code, dhcp.out).toBe(0);

    const addr = inVm('ip', '-o', '-4', 'addr', 'show', 'dev', 'unvm0').out;
    const m = /inet 10\.230\.0\.(\d+)\/24/.exec(addr);
    expect(m, addr).not.toBeNull();
    const host = Number(m![1]);
    expect(host).toBeGreaterThanOrEqual(128);
    expect(host).toBeLessThanOrEqual(254);
    expect(inVm('ip', '-4', 'route', 'show', 'default').out).toMatch(/default via 10\.230\.0\.1 dev unvm0/);
    expect(readFileSync(join(etcNetns, 'resolv.conf'), 'utf8')).toMatch(/nameserver 10\.230\.0\.1/);

    expect(inVm('ping', '-c', '2', '-i', '0.2', '-W', '1', '10.230.0.2').code).toBe(0);
    expect(inVm('ping', '-c', '2', '-i', '0.2', '-W', '1', '10.230.0.1').code).toBe(0);
    expect(d.ping('c1', `10.230.0.${host}`, 2)).toBe(true);
    // DNS at the gateway (the address DHCP gave as resolver): container names of the network
    const ns = inVm('busybox', 'nslookup', 'c1', '10.230.0.1');
    expect(ns.code, ns.out).toBe(0);
    expect(ns.out).toMatch(/Address:\s*10\.230\.0\.2\b/);

    // the leased address is taken: a container cannot have it
    const taken = d.cli('run', '--name', 'c2', '--network', 'lan', '--ip', `10.230.0.${host}`);
    expect(taken.code).toBe(1);
    expect(JSON.parse(d.ok('attachments', '--json'))).toMatchObject([{ Name: 'vm1', Network: 'lan', Interface: 'unvm0' }]);

    // a restart brings the attachment back: a fresh TAP in the daemon's namespace (the moved one went with the old daemon)
    await d.stop();
    expect(inVm('ip', 'link', 'show', 'unvm0').code).not.toBe(0);
    await d.start();
    expect(JSON.parse(d.ok('attachments', '--json'))).toMatchObject([{ Name: 'vm1', Interface: 'unvm0' }]);
    expect(sh('ip', '-n', d.hostNs, 'link', 'show', 'unvm0').code).toBe(0);

    // detach: the TAP disappears, and the network can go
    d.ok('detach', 'vm1');
    expect(sh('ip', '-n', d.hostNs, 'link', 'show', 'unvm0').code).not.toBe(0);
    expect(d.cli('detach', 'vm1').stderr).toMatch(/No such attachment/);
    d.ok('rm', '-f', 'c1');
    d.ok('network', 'rm', 'lan');
  });
});
