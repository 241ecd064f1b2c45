/**
 * macvlan and ipvlan with real traffic. The daemon's namespace holds the
 * parent interfaces (veths); their peers sit in "lan" namespaces holding a
 * kernel host (and, for vepa, a hairpinning kernel bridge). Needs root.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonUnderTest, requireRoot, ROOT } from './harness.js';

const root = requireRoot('macvlan/ipvlan scenario tests (parent veths, lan namespaces)');

describe.runIf(root)('macvlan and ipvlan on a lan', () => {
  const d = new DaemonUnderTest('pv');
  const lan = `${d.prefix}lan`; // macvlan modes: eth0 in a hairpinning bridge, host 10.60.0.1
  // 802.1Q: this kernel has neither the 8021q module nor VLAN-filtering bridges, so the VLAN hosts
  // (10.61.0.1 on VLAN 100, 10.62.0.1 on VLAN 200) are test/fixtures/vlan_host.py on eth0
  const vlan = `${d.prefix}vlan`;
  const hosts: ChildProcess[] = [];
  const ipl = `${d.prefix}ipl`; // ipvlan: host 10.63.0.1; l3 endpoints in 10.64.0.0/24
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  const inNs = (ns: string, cmd: string) => spawnSync('ip', ['netns', 'exec', ns, 'sh', '-c', cmd], { encoding: 'utf8', timeout: 30_000 });
  const macOf = (ctr: string, ifname = 'eth0') => d.exec(ctr, 'cat', `/sys/class/net/${ifname}/address`).stdout.trim();
  const ctrIp = (ctr: string, net: string): string => JSON.parse(d.ok('inspect', ctr))[0].NetworkSettings.Networks[net].IPAddress;

  /** a veth: `parent` in the daemon's namespace, `eth0` in `ns`; the kernel's offloads stay on (the parent's super-frames are read whole) */
  function wire(ns: string, parent: string): void {
    ip('netns', 'add', ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    ip('-n', d.hostNs, 'link', 'add', parent, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('-n', d.hostNs, 'link', 'set', parent, 'up');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
  }

  async function capture(ns: string, dev: string, filter: string, fn: () => void): Promise<string> {
    const p = spawn('ip', ['netns', 'exec', ns, 'tcpdump', '-Z', 'root', '--immediate-mode', '-l', '-n', '-e', '-i', dev, filter], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    let err = '';
    p.stdout!.on('data', (b) => (text += b));
    p.stderr!.on('data', (b) => (err += b));
    const t0 = Date.now();
    while (!err.includes('listening') && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 200));
    try {
      fn();
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      const done = new Promise((r) => p.once('exit', r));
      p.kill('SIGINT');
      await done;
    }
    return text;
  }

  beforeAll(async () => {
    ip('netns', 'add', d.hostNs);
    wire(lan, 'lan0');
    wire(vlan, 'lan1');
    wire(ipl, 'lan2');
    // lan: a kernel bridge that hairpins (what vepa needs from the "external switch")
    inNs(lan, 'ip link add br0 type bridge && ip link set eth0 master br0 && ip link set br0 up && bridge link set dev eth0 hairpin on && ip addr add 10.60.0.1/24 dev br0');
    inNs(ipl, 'ip addr add 10.63.0.1/24 dev eth0 && ip route add 10.64.0.0/24 via 10.63.0.254');
    // the parents' own host: lan2 is addressed (the lan routes the l3 subnet to it); lan0 gets an address for the "cannot reach" check
    ip('-n', d.hostNs, 'addr', 'add', '10.63.0.254/24', 'dev', 'lan2');
    ip('-n', d.hostNs, 'addr', 'add', '10.60.0.254/24', 'dev', 'lan0');
    await d.start();
  }, 60_000);

  afterAll(async () => {
    for (const h of hosts) h.kill('SIGKILL');
    await d.cleanup();
    expect(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout).not.toContain(d.prefix);
  });

  it('macvlan bridge: endpoints reach the lan host with MACs of their own and each other; the parent host cannot reach them', async () => {
    inNs(lan, 'bridge link set dev eth0 hairpin off'); // a plain switch (a hairpinning one would reflect the parent's own frames back)
    d.ok('network', 'create', '-d', 'macvlan', '--subnet', '10.60.0.0/24', '--gateway', '10.60.0.1', '-o', 'parent=lan0', 'mv');
    d.ok('run', '--name', 'm1', '--network', 'mv');
    d.ok('run', '--name', 'm2', '--network', 'mv');
    expect(d.ping('m1', '10.60.0.1')).toBe(true);
    expect(d.ping('m2', '10.60.0.1')).toBe(true);
    const neigh = inNs(lan, 'ip neigh show dev br0').stdout;
    const [m1, m2] = [macOf('m1'), macOf('m2')];
    expect(m1).not.toBe(m2);
    expect(neigh).toContain(`${ctrIp('m1', 'mv')} lladdr ${m1}`);
    expect(neigh).toContain(`${ctrIp('m2', 'mv')} lladdr ${m2}`);
    expect(d.ping('m1', 'm2')).toBe(true); // by name: embedded DNS; bridge mode switches locally
    // the parent's own namespace cannot reach its macvlan endpoints (as with the kernel)
    expect(inNs(d.hostNs, `ping -c 2 -W 1 ${ctrIp('m1', 'mv')}`).status).not.toBe(0);
  });

  it('macvlan private: no endpoint-to-endpoint traffic even through a hairpinning switch; vepa: only through it', async () => {
    d.ok('rm', 'm1', 'm2');
    d.ok('network', 'rm', 'mv');
    inNs(lan, 'bridge link set dev eth0 hairpin on');
    d.ok('network', 'create', '-d', 'macvlan', '--subnet', '10.60.0.0/24', '--gateway', '10.60.0.1', '-o', 'parent=lan0', '-o', 'macvlan_mode=private', 'mp');
    d.ok('run', '--name', 'p1', '--network', 'mp');
    d.ok('run', '--name', 'p2', '--network', 'mp');
    expect(d.ping('p1', '10.60.0.1')).toBe(true);
    expect(d.ping('p1', ctrIp('p2', 'mp'))).toBe(false);
    d.ok('rm', 'p1', 'p2');
    d.ok('network', 'rm', 'mp');
    d.ok('network', 'create', '-d', 'macvlan', '--subnet', '10.60.0.0/24', '--gateway', '10.60.0.1', '-o', 'parent=lan0', '-o', 'macvlan_mode=vepa', 'mvepa');
    d.ok('run', '--name', 'v1', '--network', 'mvepa');
    d.ok('run', '--name', 'v2', '--network', 'mvepa');
    const v2 = ctrIp('v2', 'mvepa');
    const seen = await capture(lan, 'eth0', 'icmp', () => {
      expect(d.ping('v1', v2)).toBe(true);
    });
    // the echo went out to the lan switch and came back (hairpin): seen on the lan side
    expect(seen).toMatch(new RegExp(`> ${v2.replace(/\./g, '\\.')}: ICMP echo request`));
    inNs(lan, 'bridge link set dev eth0 hairpin off');
    expect(d.ping('v1', v2)).toBe(false); // no hairpin, no vepa traffic
    inNs(lan, 'bridge link set dev eth0 hairpin on');
    d.ok('rm', 'v1', 'v2');
    d.ok('network', 'rm', 'mvepa');
  });

  it('macvlan passthru: one endpoint gets the parent itself (its MAC); a second is refused', async () => {
    inNs(lan, 'bridge link set dev eth0 hairpin off');
    d.ok('network', 'create', '-d', 'macvlan', '--subnet', '10.60.0.0/24', '--gateway', '10.60.0.1', '-o', 'parent=lan0', '-o', 'macvlan_mode=passthru', 'mpt');
    d.ok('run', '--name', 'pt1', '--network', 'mpt');
    const parentMac = inNs(d.hostNs, 'cat /sys/class/net/lan0/address').stdout.trim();
    expect(macOf('pt1')).toBe(parentMac);
    expect(d.ping('pt1', '10.60.0.1')).toBe(true);
    expect(inNs(lan, 'ip neigh show dev br0').stdout).toContain(`${ctrIp('pt1', 'mpt')} lladdr ${parentMac}`);
    const second = d.cli('run', '--name', 'pt2', '--network', 'mpt');
    expect(second.code).not.toBe(0);
    expect(second.stderr).toMatch(/only one endpoint/);
    expect(d.cli('inspect', 'pt2').code).not.toBe(0); // nothing left of it: no namespace, no TAP held
    expect(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout).not.toContain(`${d.prefix}pt2`);
    const stats = JSON.parse(d.ok('stats', '--json'));
    expect(stats.networks.find((n: { name: string }) => n.name === 'mpt').ports.map((p: { name: string }) => p.name)).toEqual(['pt1:eth0']);
    d.ok('rm', 'pt1');
    d.ok('network', 'rm', 'mpt');
    inNs(lan, 'bridge link set dev eth0 hairpin on');
  });

  it("the kernel's macvlan on the same veth gives the same answers (private: never; vepa: only with hairpin)", () => {
    const kernel = (mode: string, hairpin: boolean): boolean => {
      inNs(lan, `bridge link set dev eth0 hairpin ${hairpin ? 'on' : 'off'}`);
      const ns = [`${d.prefix}k1`, `${d.prefix}k2`];
      try {
        ns.forEach((n, i) => {
          ip('netns', 'add', n);
          ip('-n', d.hostNs, 'link', 'add', 'link', 'lan0', `kmv${i}`, 'type', 'macvlan', 'mode', mode);
          ip('-n', d.hostNs, 'link', 'set', `kmv${i}`, 'netns', n);
          inNs(n, `ip addr add 10.60.0.${150 + i}/24 dev kmv${i} && ip link set kmv${i} up && ip link set lo up`);
        });
        return inNs(ns[0], 'ping -c 2 -W 1 10.60.0.151').status === 0;
      } finally {
        for (const n of ns) spawnSync('ip', ['netns', 'del', n]);
      }
    };
    expect(kernel('private', true)).toBe(false);
    expect(kernel('vepa', true)).toBe(true);
    expect(kernel('vepa', false)).toBe(false);
    expect(kernel('bridge', false)).toBe(true);
    inNs(lan, 'bridge link set dev eth0 hairpin on');
  });

  it('parent IFACE.VLAN: frames carry the 802.1Q tag on the lan, endpoints see them untagged; two VLANs are isolated', async () => {
    d.ok('network', 'create', '-d', 'macvlan', '--subnet', '10.61.0.0/24', '--gateway', '10.61.0.1', '-o', 'parent=lan1.100', 'v100');
    d.ok('network', 'create', '-d', 'macvlan', '--subnet', '10.62.0.0/24', '--gateway', '10.62.0.1', '-o', 'parent=lan1.200', 'v200');
    expect(d.cli('network', 'create', '-d', 'macvlan', '--subnet', '10.65.0.0/24', '-o', 'parent=lan1.100', 'again').stderr).toMatch(/already used by network v100/);
    d.ok('run', '--name', 't1', '--network', 'v100');
    d.ok('run', '--name', 't2', '--network', 'v200');
    const answered: Record<number, string> = { 100: '', 200: '' };
    for (const [vid, addr] of [[100, '10.61.0.1'], [200, '10.62.0.1']] as const) {
      const p = spawn('ip', ['netns', 'exec', vlan, 'python3', join(ROOT, 'test', 'fixtures', 'vlan_host.py'), 'eth0', String(vid), addr], { stdio: ['ignore', 'pipe', 'inherit'] });
      hosts.push(p);
      await new Promise<void>((resolve) => p.stdout!.on('data', (b) => ((answered[vid] += b), answered[vid].includes('ready') && resolve())));
    }
    let ok = false;
    const seen = await capture(vlan, 'eth0', 'icmp or arp or vlan', () => {
      ok = d.ping('t1', '10.61.0.1');
    });
    expect(ok, seen + JSON.stringify(JSON.parse(d.ok('stats', '--json')).networks)).toBe(true);
    expect(seen).toMatch(/vlan 100/);
    expect(seen).not.toMatch(/vlan 200/);
    expect(d.exec('t1', 'ip', '-d', 'link', 'show', 'eth0').stdout).not.toMatch(/vlan/);
    expect(d.ping('t2', '10.62.0.1')).toBe(true);
    // each VLAN host answered only its own VLAN
    await new Promise((r) => setTimeout(r, 300));
    expect(answered[100], JSON.stringify(answered) + seen).toMatch(/arp\necho/);
    expect(answered[200]).toMatch(/arp\necho/);
    // from the lan: a broadcast ARP for t1's address tagged 200, then one tagged 100 — t1 sees only the second
    const t1ip = ctrIp('t1', 'v100');
    const arpFrom = (vid: number, sender: string) =>
      `import socket,struct;s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW);s.bind(('eth0',0));m=bytes.fromhex('020000000${vid}');` +
      `s.send(b'\\xff'*6+m+b'\\x81\\x00'+struct.pack('!H',${vid})+b'\\x08\\x06'+bytes.fromhex('0001080006040001')+m+socket.inet_aton('${sender}')+b'\\0'*6+socket.inet_aton('${t1ip}'))`;
    const got = await capture(`${d.prefix}t1`, 'eth0', 'arp', () => {
      inNs(vlan, `python3 -c "${arpFrom(200, '10.61.0.201')}"`);
      inNs(vlan, `python3 -c "${arpFrom(100, '10.61.0.101')}"`);
    });
    expect(got).toMatch(/tell 10\.61\.0\.101/);
    expect(got).not.toMatch(/tell 10\.61\.0\.201/);
    d.ok('rm', 't1', 't2');
    d.ok('network', 'rm', 'v100', 'v200');
  });

  it('ipvlan l2: endpoints share the parent MAC and are told apart by IP', async () => {
    d.ok('network', 'create', '-d', 'ipvlan', '--subnet', '10.63.0.0/24', '--gateway', '10.63.0.1', '--ip-range', '10.63.0.128/25', '-o', 'parent=lan2', 'il2');
    d.ok('run', '--name', 'i1', '--network', 'il2');
    d.ok('run', '--name', 'i2', '--network', 'il2');
    const parentMac = inNs(d.hostNs, 'cat /sys/class/net/lan2/address').stdout.trim();
    expect(macOf('i1')).toBe(parentMac);
    expect(macOf('i2')).toBe(parentMac);
    const [a, b] = [ctrIp('i1', 'il2'), ctrIp('i2', 'il2')];
    expect(inNs(ipl, `ping -c 2 -W 1 ${a} && ping -c 2 -W 1 ${b}`).status).toBe(0);
    const neigh = inNs(ipl, 'ip neigh show dev eth0').stdout;
    expect(neigh).toContain(`${a} lladdr ${parentMac}`);
    expect(neigh).toContain(`${b} lladdr ${parentMac}`);
    expect(d.ping('i1', 'i2')).toBe(true);
    d.ok('rm', 'i1', 'i2');
    d.ok('network', 'rm', 'il2');
  });

  it('ipvlan l3: routed — the lan router reaches each endpoint by IP, and no broadcast leaves', async () => {
    d.ok('network', 'create', '-d', 'ipvlan', '--subnet', '10.64.0.0/24', '-o', 'parent=lan2', '-o', 'ipvlan_mode=l3', 'il3');
    d.ok('run', '--name', 'j1', '--network', 'il3');
    const j1 = ctrIp('j1', 'il3');
    expect(inNs(ipl, `ping -c 3 -W 1 ${j1}`).status).toBe(0);
    const seen = await capture(ipl, 'eth0', 'not ip6', () => {
      d.exec('j1', 'ping', '-b', '-c', '2', '-W', '1', '10.64.0.255');
    });
    expect(seen).not.toMatch(/ff:ff:ff:ff:ff:ff/);
    d.ok('rm', 'j1');
    d.ok('network', 'rm', 'il3');
    // l3s: the same, with connection tracking: the flow shows in `usernet conntrack`
    d.ok('network', 'create', '-d', 'ipvlan', '--subnet', '10.64.0.0/24', '-o', 'parent=lan2', '-o', 'ipvlan_mode=l3s', 'il3s');
    d.ok('run', '--name', 'k1', '--network', 'il3s');
    const k1 = ctrIp('k1', 'il3s');
    expect(inNs(ipl, `ping -c 2 -W 1 ${k1}`).status).toBe(0);
    const flows = JSON.parse(d.ok('conntrack', '--json'));
    expect(JSON.stringify(flows)).toContain(k1);
    d.ok('rm', 'k1');
    d.ok('network', 'rm', 'il3s');
  });

  it('bad input: unknown parent, bad mode, missing parent — one clear line, nothing changes', () => {
    const before = d.ok('network', 'ls');
    expect(d.cli('network', 'create', '-d', 'macvlan', '--subnet', '10.66.0.0/24', '-o', 'parent=nope0', 'bad').stderr).toMatch(/parent interface nope0 does not exist/);
    expect(d.cli('network', 'create', '-d', 'macvlan', '-o', 'parent=lan0', '-o', 'macvlan_mode=weird', 'bad').stderr).toMatch(/invalid option macvlan_mode="weird"/);
    expect(d.cli('network', 'create', '-d', 'ipvlan', 'bad').stderr).toMatch(/need -o parent=IFACE/);
    expect(d.cli('network', 'create', '-d', 'macvlan', '-o', 'parent=lan0.5000', 'bad').stderr).toMatch(/VLAN id must be from 1 to 4094/);
    expect(d.ok('network', 'ls')).toBe(before);
  });
});
