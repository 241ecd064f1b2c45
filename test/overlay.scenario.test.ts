/**
 * Overlay networks across hosts, end to end: three usernet daemons, each in
 * a host namespace of its own on an underlay (a kernel bridge in its own
 * namespace), etcd on the underlay, and real traffic between containers on
 * different hosts — by name, over TCP, with the MTU the overlay promises,
 * VXLAN on the wire (tshark), a daemon that dies and comes back, etcd going
 * away and coming back, an encrypted network, and a Linux kernel vxlan
 * device as a static peer. Needs root (CI is root).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterLab, ETCD_IP } from '../src/lab/cluster-lab.js';
import { blobRoundTrip } from './blob.js';
import { CLI, requireRoot, ROOT, servePeer } from './harness.js';

const root = requireRoot('overlay scenario tests (three daemons, etcd, VXLAN underlay)');
const FIX = join(ROOT, 'test', 'fixtures');
const haveEtcd = root && spawnSync('etcd', ['--version']).status === 0;
if (root && !haveEtcd) console.warn('\n*** SKIPPED overlay scenarios: etcd (Debian etcd-server) is not installed — scripts/setup.sh installs it ***\n');

type Host = ReturnType<ClusterLab['addHost']>;
const netId = (h: Host, n: string): string => {
  const r = h.cli('network', 'inspect', n);
  return r.code === 0 ? JSON.parse(r.stdout)[0].Id : '';
};
const netInfo = (h: Host, n: string) => JSON.parse(h.ok('network', 'inspect', n))[0];
const ipOf = (h: Host, c: string, n: string): string => JSON.parse(h.ok('inspect', c))[0].NetworkSettings.Networks[n].IPAddress;

async function poll(pred: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return pred();
}

describe.runIf(haveEtcd)('overlay networks across three hosts', () => {
  const lab = new ClusterLab(3);
  const servers: ChildProcess[] = [];
  let h1: Host;
  let h2: Host;
  let h3: Host;
  /** the underlay bridge port of each host (for captures) */
  const ulPort: string[] = [];

  const serve = (ns: string, port: number, tag: string) => servePeer(servers, ns, 'tcp', port, tag);

  /** tcpdump on the underlay bridge while `fn` runs; the pcap path */
  async function capture(port: string, filter: string, file: string, fn: () => Promise<void> | void): Promise<string> {
    const path = join(lab.dir, file);
    const p = spawn('ip', ['netns', 'exec', lab.ul, 'tcpdump', '-Z', 'root', '--immediate-mode', '-i', port, '-U', '-w', path, filter], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d) => (err += d));
    if (!(await poll(() => err.includes('listening') || p.exitCode !== null, 5000)) || p.exitCode !== null) {
      p.kill('SIGKILL');
      throw new Error(`tcpdump did not start: ${err}`);
    }
    // "listening" comes just before the socket is attached; --immediate-mode: without it libpcap hands packets over
    // a ring block at a time (on a timeout of up to a second), and the last ones before SIGINT were lost
    await new Promise((r) => setTimeout(r, 200));
    try {
      await fn();
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      const done = new Promise((r) => p.once('exit', r));
      p.kill('SIGINT');
      await done;
    }
    return path;
  }

  function tshark(path: string, ...args: string[]): string {
    return spawnSync('tshark', ['-r', path, ...args], { encoding: 'utf8' }).stdout;
  }

  beforeAll(async () => {
    lab.setUp();
    await lab.startEtcd();
    h1 = lab.addHost();
    h2 = lab.addHost();
    h3 = lab.addHost();
    ulPort.push('m1', 'm2', 'm3');
    await Promise.all([h1.start(), h2.start(), h3.start()]);
  }, 60_000);

  afterAll(async () => {
    for (const s of servers) s.kill('SIGKILL');
    await lab.cleanup();
    expect(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout).not.toContain(lab.prefix);
  }, 60_000);

  it('a network created on one host is usable from all, and network ls agrees', async () => {
    h1.ok('network', 'create', '-d', 'overlay', '--subnet', '10.10.0.0/24', 'ov1');
    const id = netId(h1, 'ov1');
    for (const h of [h2, h3]) expect(await poll(() => netId(h, 'ov1') === id, 15_000)).toBe(true);
    const ls = [h1, h2, h3].map((h) => h.ok('network', 'ls').split('\n').find((l) => l.includes(' ov1 ')));
    expect(ls[0]).toMatch(/ov1\s+overlay\s+swarm/);
    expect(ls[1]).toBe(ls[0]);
    expect(ls[2]).toBe(ls[0]);
    // the same name from another host is refused, as is a clashing subnet
    expect(h2.cli('network', 'create', '-d', 'overlay', 'ov1').stderr).toMatch(/already exists/);
    expect(h3.cli('network', 'create', '-d', 'overlay', '--subnet', '10.10.0.0/16', 'ovx').stderr).toMatch(/overlaps/);
    expect(h3.cli('network', 'create', '-d', 'overlay', '-o', 'vni=nope', 'ovy').stderr).toMatch(/invalid option vni/);
    const vni = netInfo(h2, 'ov1').Options['com.docker.network.driver.overlay.vxlanid_list'];
    expect(Number(vni)).toBeGreaterThanOrEqual(4096);
  });

  it('containers on three hosts ping each other and connect over TCP by name, with distinct addresses', async () => {
    h1.ok('run', '--name', 'c1', '--network', 'ov1');
    h2.ok('run', '--name', 'c2', '--network', 'ov1');
    h3.ok('run', '--name', 'c3', '--network', 'ov1');
    const ips = [ipOf(h1, 'c1', 'ov1'), ipOf(h2, 'c2', 'ov1'), ipOf(h3, 'c3', 'ov1')];
    expect(new Set(ips).size).toBe(3);
    // names resolve once the records have reached every host
    expect(await poll(() => h1.exec('c1', 'getent', 'hosts', 'c3').stdout.includes(ips[2]), 15_000)).toBe(true);
    expect(h1.ping('c1', 'c2')).toBe(true);
    expect(h2.ping('c2', 'c3')).toBe(true);
    expect(h3.ping('c3', 'c1')).toBe(true);
    await serve(h2.prefix + 'c2', 8080, 'c2');
    const r = h1.exec('c1', 'python3', join(FIX, 'peer_client.py'), 'tcp', 'c2', '8080');
    expect(r.stdout.trim()).toBe(`c2 ${ips[0]}:${r.stdout.trim().split(':').pop()}`);
    // the MTU containers get
    expect(h1.exec('c1', 'cat', '/sys/class/net/eth0/mtu').stdout.trim()).toBe('1450');
  });

  it('addresses stay unique when hosts allocate at the same time', async () => {
    const names = [1, 2, 3, 4].flatMap((i) => [`p${i}a`, `p${i}b`]);
    const runs = names.map((n, i) => new Promise<number>((resolve) => {
      const h = i % 2 === 0 ? h1 : h2;
      const p = spawn(process.execPath, [CLI, '--socket', h.socket, 'run', '--name', n, '--network', 'ov1'], { stdio: 'ignore' });
      p.on('exit', (c) => resolve(c ?? -1));
    }));
    const codes = await Promise.all(runs);
    try {
      expect(codes).toEqual(names.map(() => 0));
      const ips = names.map((n, i) => ipOf(i % 2 === 0 ? h1 : h2, n, 'ov1'));
      expect(new Set(ips).size).toBe(names.length);
    } finally {
      for (const [i, n] of names.entries()) (i % 2 === 0 ? h1 : h2).cli('rm', n);
    }
  });

  it('frames on the underlay decode as VXLAN with the network VNI (tshark)', async () => {
    const vni = netInfo(h1, 'ov1').Options['com.docker.network.driver.overlay.vxlanid_list'];
    const pcap = await capture(ulPort[0], 'udp port 4789', 'vxlan.pcap', () => {
      expect(h1.ping('c1', 'c2', 3)).toBe(true);
    });
    const out = tshark(pcap, '-Y', 'vxlan && icmp', '-T', 'fields', '-e', 'vxlan.vni', '-e', 'ip.src', '-e', 'ip.dst', '-e', 'ip.flags.df', '-e', 'udp.srcport', '-e', 'ip.checksum.status', '-o', 'ip.check_checksum:TRUE');
    const lines = out.trim().split('\n').filter(Boolean);
    expect(lines.length, tshark(pcap)).toBeGreaterThanOrEqual(2); // requests and replies (a loaded machine may lose a ping)
    for (const l of lines) {
      // two IPv4 layers: the first value of each field is the outer header's
      const [v, , , df, sport, csum] = l.split('\t').map((f) => f.split(',')[0]);
      expect(v).toBe(vni);
      expect(['1', 'True']).toContain(df);
      expect(Number(sport)).toBeGreaterThanOrEqual(49152);
      expect(csum).toBe('1'); // tshark: 1 = good
    }
    // outer source/destination are the two VTEPs
    expect(out).toContain(`\t${lab.hostIp(1)},`);
    expect(out).toMatch(new RegExp(`\t${lab.hostIp(2).replace(/\./g, '\\.')},`));
  });

  it('MTU: a 1450-byte DF ping passes between hosts; 1451 bytes get frag-needed', async () => {
    expect(h1.exec('c1', 'ping', '-c', '2', '-W', '2', '-M', 'do', '-s', '1422', 'c2').code).toBe(0);
    const local = h1.exec('c1', 'ping', '-c', '1', '-W', '2', '-M', 'do', '-s', '1423', 'c2');
    expect(local.code).not.toBe(0);
    expect(local.stdout + local.stderr).toMatch(/mtu ?= ?1450/i);
    // through the router (the host's namespace reaches local containers at MTU 1500): ICMP frag-needed from usernet
    const c1ip = ipOf(h1, 'c1', 'ov1');
    const r = lab.run(h1.hostNs, ['ping', '-c', '2', '-W', '2', '-M', 'do', '-s', '1423', c1ip]);
    expect(r.out).toMatch(/Frag needed and DF set \(mtu = 1450\)|mtu ?= ?1450/);
    expect(lab.run(h1.hostNs, ['ping', '-c', '1', '-W', '2', '-M', 'do', '-s', '1422', c1ip]).code).toBe(0);
  });

  it('super-frames: 8 MB each way between hosts arrive intact (segmented before VXLAN, coalesced again for the receiving container); the underlay carries only full-size datagrams', async () => {
    const c2ip = ipOf(h2, 'c2', 'ov1');
    // in c2, tcpdump sees the decapsulated segments coalesced again into super-frames (software GRO)
    const td = spawn('ip', ['netns', 'exec', h2.prefix + 'c2', 'tcpdump', '-Z', 'root', '--immediate-mode', '-l', '-n', '-i', 'eth0', 'tcp and greater 3000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    servers.push(td);
    let big = 0;
    let tdErr = '';
    td.stdout!.on('data', (b) => (big += String(b).split('\n').filter(Boolean).length));
    td.stderr!.on('data', (b) => (tdErr += b));
    await poll(() => tdErr.includes('listening'), 5000);
    const pcap = await capture(ulPort[0], 'udp port 4789 and greater 1400', 'big.pcap', () => blobRoundTrip(servers, h1.prefix + 'c1', h2.prefix + 'c2', c2ip, 9300, 8 << 20));
    const tdDone = new Promise((r) => td.once('exit', r));
    td.kill('SIGINT');
    await tdDone;
    expect(big).toBeGreaterThan(10);
    // iperf3 between the hosts
    const srv = spawn('ip', ['netns', 'exec', h2.prefix + 'c2', 'iperf3', '-s', '-1', '-p', '5301'], { stdio: 'ignore' });
    servers.push(srv);
    await new Promise((r) => setTimeout(r, 300));
    const ip3 = spawnSync('ip', ['netns', 'exec', h1.prefix + 'c1', 'iperf3', '-c', c2ip, '-p', '5301', '-t', '2', '-J'], { encoding: 'utf8', timeout: 20_000 });
    expect(JSON.parse(ip3.stdout).end.sum_received.bytes).toBeGreaterThan(10_000_000);
    // the VXLAN datagrams are full-size segments: outer IP length at most 1500, and many of them
    const lens = tshark(pcap, '-T', 'fields', '-e', 'ip.len').trim().split('\n').filter(Boolean).map((l) => Number(l.split(',')[0]));
    expect(lens.length).toBeGreaterThan(1000);
    expect(Math.max(...lens)).toBeLessThanOrEqual(1500);
  }, 60_000);

  it('etcd away: forwarding goes on with what is known, then the daemons catch up', async () => {
    h3.ok('run', '--name', 'c5', '--network', 'ov1');
    expect(await poll(() => h1.exec('c1', 'getent', 'hosts', 'c5').code === 0, 15_000)).toBe(true);
    await lab.stopEtcd();
    expect(h1.ping('c1', 'c2')).toBe(true);
    h3.ok('rm', 'c5'); // its records cannot be withdrawn now: the daemon retries once etcd is back
    expect(h2.ping('c2', 'c3')).toBe(true);
    await new Promise((r) => setTimeout(r, 4000)); // longer than the lease TTL
    expect(h3.ping('c3', 'c1')).toBe(true);
    await lab.startEtcd();
    // a container made after etcd is back is known everywhere
    expect(await poll(() => h2.cli('run', '--name', 'c4', '--network', 'ov1').code === 0, 30_000)).toBe(true);
    try {
      expect(await poll(() => h1.exec('c1', 'getent', 'hosts', 'c4').code === 0, 30_000)).toBe(true);
      // and the others' records came back (leases were renewed or retaken): h2 must know c1 again
      // before c4 can answer it, so the ping waits for that (each host re-announces on its own watch)
      expect(await poll(() => h2.exec('c2', 'getent', 'hosts', 'c1').code === 0 && h2.exec('c2', 'getent', 'hosts', 'c3').code === 0, 15_000)).toBe(true);
      expect(await poll(() => h1.ping('c1', 'c4'), 10_000)).toBe(true);
      expect(await poll(() => h1.exec('c1', 'getent', 'hosts', 'c5').code !== 0, 15_000)).toBe(true);
    } finally {
      h2.cli('rm', '-f', 'c4'); // later tests count endpoints: never leave it behind
    }
  }, 120_000);

  it('a daemon that dies is forgotten after its lease; restarted, it rejoins', async () => {
    const c3ip = ipOf(h3, 'c3', 'ov1');
    h3.proc!.kill('SIGKILL');
    await new Promise((r) => h3.proc!.once('exit', r));
    h3.proc = null;
    // once the lease expires the others drop its VTEP
    expect(await poll(() => h1.exec('c1', 'getent', 'hosts', 'c3').code !== 0, 15_000)).toBe(true);
    const table = () => netInfo(h1, 'ov1').Overlay;
    expect(await poll(() => !JSON.stringify(table()).includes(lab.hostIp(3)), 15_000)).toBe(true);
    // nothing is sent to it any more: not for its old address, not for broadcast
    const pcap = await capture(ulPort[0], 'udp port 4789', 'dead.pcap', () => {
      h1.exec('c1', 'ping', '-c', '2', '-W', '1', c3ip);
      h1.exec('c1', 'ping', '-c', '1', '-W', '1', '10.10.0.250'); // ARP broadcast for an unknown address
    });
    const dsts = tshark(pcap, '-T', 'fields', '-e', 'ip.dst').trim().split('\n').map((l) => l.split(',')[0]);
    expect(dsts).toContain(lab.hostIp(2)); // the broadcast still reaches the live host: the capture works
    expect(dsts).not.toContain(lab.hostIp(3));
    // restart: its state comes back and it rejoins
    await h3.start();
    expect(await poll(() => h1.exec('c1', 'getent', 'hosts', 'c3').stdout.includes(c3ip), 15_000)).toBe(true);
    expect(h1.ping('c1', 'c3')).toBe(true);
    expect(h3.ping('c3', 'c2')).toBe(true);
  }, 90_000);

  it('an encrypted network carries traffic, keys rotate, and the underlay shows no plaintext', async () => {
    h1.ok('network', 'create', '-d', 'overlay', '-o', 'encrypted', '-o', 'key_rotation=3', '--subnet', '10.11.0.0/24', 'sec');
    expect(await poll(() => h2.cli('network', 'inspect', 'sec').code === 0, 15_000)).toBe(true);
    h1.ok('run', '--name', 's1', '--network', 'sec');
    h2.ok('run', '--name', 's2', '--network', 'sec');
    expect(h1.exec('s1', 'cat', '/sys/class/net/eth0/mtu').stdout.trim()).toBe('1418');
    expect(await poll(() => h1.exec('s1', 'getent', 'hosts', 's2').code === 0, 15_000)).toBe(true);
    const pattern = 'c0ffee15deadbeef';
    const pcap = await capture(ulPort[0], 'udp port 4789', 'sec.pcap', async () => {
      expect(h1.exec('s1', 'ping', '-c', '3', '-i', '0.2', '-W', '2', '-p', pattern, 's2').code).toBe(0);
      await new Promise((r) => setTimeout(r, 6500)); // two rotations
      expect(h1.exec('s1', 'ping', '-c', '3', '-i', '0.2', '-W', '2', '-p', pattern, '-M', 'do', '-s', '1390', 's2').code).toBe(0);
    });
    // super-frames through the encrypted network: 4 MB each way, intact
    await blobRoundTrip(servers, h1.prefix + 's1', h2.prefix + 's2', ipOf(h2, 's2', 'sec'), 9301, 4 << 20);
    const raw = readFileSync(pcap);
    expect(raw.includes(Buffer.from(pattern, 'hex'))).toBe(false);
    const vni = Number(netInfo(h1, 'sec').Options['com.docker.network.driver.overlay.vxlanid_list']).toString(16).padStart(6, '0');
    // this network's datagrams (other overlays may talk meanwhile): VNI at payload bytes 4..6
    const rows = tshark(pcap, '-T', 'fields', '-e', 'udp.payload').trim().split('\n').filter((r) => r.slice(8, 14) === vni);
    expect(rows.length).toBeGreaterThanOrEqual(12);
    for (const r of rows) expect(r.slice(0, 2)).toBe('0a'); // flags: VNI valid + encrypted
    const keyIds = new Set(rows.map((r) => r.slice(16, 24)));
    expect(keyIds.size).toBeGreaterThanOrEqual(2); // rotated while the capture ran
    h1.ok('rm', 's1');
    h2.ok('rm', 's2');
  }, 60_000);

  it('compose: `usernet up` creates an overlay network that other hosts join by name', async () => {
    const file = join(lab.dir, 'compose.yml');
    writeFileSync(file, ['name: ovc', 'services:', '  web:', '    image: nginx', '    networks: [front]', 'networks:', '  front:', '    driver: overlay', '    ipam:', '      config:', '        - subnet: 10.13.0.0/24', ''].join('\n'));
    h1.ok('up', '-f', file);
    expect(await poll(() => h2.cli('network', 'inspect', 'ovc_front').code === 0, 15_000)).toBe(true);
    h2.ok('run', '--name', 'xx', '--network', 'ovc_front');
    expect(await poll(() => h2.exec('xx', 'getent', 'hosts', 'web').code === 0, 15_000)).toBe(true);
    expect(h2.ping('xx', 'web')).toBe(true);
    h2.ok('rm', 'xx');
    h1.ok('down', '-f', file);
    expect(await poll(() => h2.cli('network', 'inspect', 'ovc_front').code !== 0, 15_000)).toBe(true);
  });

  it('network rm is refused while another host has endpoints, then removes it everywhere', async () => {
    h1.ok('rm', 'c1');
    expect(h1.cli('network', 'rm', 'ov1').stderr).toMatch(/active endpoints/);
    h2.ok('rm', 'c2');
    h3.ok('rm', 'c3');
    h1.ok('network', 'rm', 'ov1');
    for (const h of [h2, h3]) expect(await poll(() => h.cli('network', 'inspect', 'ov1').code !== 0, 15_000)).toBe(true);
  });

  it('a Linux kernel vxlan device is a valid static peer (-o peers): ping and TCP both ways', async () => {
    const kns = `${lab.prefix}kv`;
    lab.addMember(kns, '198.18.0.50');
    const sh = (cmd: string) => lab.run(kns, ['sh', '-c', cmd]);
    expect(sh(`ip link add vx0 type vxlan id 5000 dstport 4789 local 198.18.0.50 dev ul0 && bridge fdb append 00:00:00:00:00:00 dev vx0 dst ${lab.hostIp(1)} && ip addr add 10.12.0.200/24 dev vx0 && ip link set vx0 mtu 1450 up`).code).toBe(0);
    // a veth underlay does not compute offloaded inner checksums (a NIC would): let the kernel peer do them in software
    expect(sh('ethtool -K vx0 tx off').code).toBe(0);
    h1.ok('network', 'create', '-d', 'overlay', '-o', `peers=198.18.0.50`, '-o', 'vni=5000', '--subnet', '10.12.0.0/24', 'kv');
    h1.ok('run', '--name', 'k1', '--network', 'kv', '--ip', '10.12.0.10');
    expect(h1.ping('k1', '10.12.0.200', 3)).toBe(true);
    expect(sh('ping -c 2 -W 2 10.12.0.10').code).toBe(0);
    await serve(kns, 9000, 'kernel');
    expect(h1.exec('k1', 'python3', join(FIX, 'peer_client.py'), 'tcp', '10.12.0.200', '9000').stdout).toMatch(/^kernel 10\.12\.0\.10:/);
    await serve(h1.prefix + 'k1', 9001, 'k1');
    expect(sh(`python3 ${join(FIX, 'peer_client.py')} tcp 10.12.0.10 9001`).out).toMatch(/^k1 10\.12\.0\.200:/);
    // a bigger transfer (full-size frames both ways)
    expect(sh(`ping -c 2 -W 2 -M do -s 1422 10.12.0.10`).code).toBe(0);
    h1.ok('rm', 'k1');
    h1.ok('network', 'rm', 'kv');
  });

  it('etcd unreachable at start is a clear error', async () => {
    const h = lab.addHost();
    h.daemonArgs = ['--cluster', `etcd://${ETCD_IP.replace(/\d+$/, '99')}:2379`, '--advertise', lab.hostIp(4)];
    await expect(h.start()).rejects.toThrow(/cannot reach etcd at etcd:\/\/198\.18\.0\.99:2379/);
    expect(h.proc?.exitCode).toBe(1);
  }, 30_000);
});

