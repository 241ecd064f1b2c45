/**
 * End-to-end benchmarks: the same traffic between two namespaces through
 *   1. the Linux kernel bridge over veth pairs (anchor),
 *   2. a minimal C forwarder between two TAPs (bench/reference/tapfwd.c, anchor),
 *   3. usernet (a real daemon, two containers on one bridge network),
 * in one run: iperf3 TCP throughput and ping RTT. The three are measured in
 * interleaved rounds so that drift of a shared machine hits all alike;
 * RTTs are medians of per-reply times. Every namespace made here has a
 * unique prefix and is removed at the end, also on failure; every process
 * is stopped by its pid.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { DaemonLab, uniquePrefix } from '../src/lab/lab.js';
import { addNs, floodPing, ip, iperf, pingTimes, poll, removeNetns, stop, summarize, type IperfResult, type Pair } from './lab-util.js';
import { buildReference } from './reference.js';
import type { Row } from './table.js';

function tapfwdBin(): string {
  const r = buildReference('tapfwd');
  if ('error' in r) throw new Error(`C forwarder: ${r.error}`);
  return r.bin;
}

export interface E2eOptions {
  seconds?: number;
  pings?: number;
  /** interleaved rounds (kernel, C, usernet, kernel, C, usernet, …) */
  rounds?: number;
}

type Setup = 'kernel' | 'cfwd' | 'usernet' | 'busy' | 'knat' | 'unat';
const SETUPS: readonly Setup[] = ['kernel', 'cfwd', 'usernet', 'busy', 'knat', 'unat'];
/** the busy-poll window of the second usernet daemon */
const BUSY_POLL_MS = 10;

/** Start `lab`'s daemon with a bridge network `net`.0/24 and containers c1 and c2 (`net`.3) on it: the pair c1 → c2. */
async function twoContainers(lab: DaemonLab, net: string, name: string): Promise<Pair> {
  await lab.start();
  lab.ok('network', 'create', '--subnet', `${net}.0/24`, 'bench');
  lab.ok('run', '--name', 'c1', '--network', 'bench');
  lab.ok('run', '--name', 'c2', '--network', 'bench');
  return { name, client: lab.prefix + 'c1', server: lab.prefix + 'c2', serverIp: `${net}.3` };
}

export async function benchE2e(opts: E2eOptions = {}): Promise<Row[]> {
  const seconds = opts.seconds ?? 5;
  const pings = opts.pings ?? 1200;
  const rounds = opts.rounds ?? 3;
  const prefix = uniquePrefix('be');
  const procs: ChildProcess[] = [];
  const lab = new DaemonLab('bu');
  const busyLab = new DaemonLab('bp');
  const natLab = new DaemonLab('bn');
  natLab.daemonArgs = ['--uplink', 'tap:unup0,ip=192.0.2.2/24,gw=192.0.2.1'];
  busyLab.daemonArgs = ['--busy-poll', String(BUSY_POLL_MS)];
  const mkns = (n: string) => {
    const name = prefix + n;
    addNs(name);
    return name;
  };
  const pairs = {} as Record<Setup, Pair>;
  const rtt: Record<Setup, number[]> = { kernel: [], cfwd: [], usernet: [], busy: [], knat: [], unat: [] };
  const runs: Record<Setup, IperfResult[]> = { kernel: [], cfwd: [], usernet: [], busy: [], knat: [], unat: [] };
  try {
    // 1. kernel bridge over veth
    {
      const br = mkns('kbr');
      const c1 = mkns('kc1');
      const c2 = mkns('kc2');
      ip('-n', br, 'link', 'add', 'br0', 'type', 'bridge');
      ip('-n', br, 'link', 'set', 'br0', 'up');
      for (const [ns, addr, veth] of [
        [c1, '10.123.0.1/24', 'vk1'],
        [c2, '10.123.0.2/24', 'vk2'],
      ]) {
        ip('-n', br, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
        ip('-n', br, 'link', 'set', veth, 'master', 'br0', 'up');
        ip('-n', ns, 'addr', 'add', addr, 'dev', 'eth0');
        ip('-n', ns, 'link', 'set', 'eth0', 'up');
      }
      pairs.kernel = { name: 'kernel bridge', client: c1, server: c2, serverIp: '10.123.0.2' };
    }
    // 2. the minimal C forwarder between two TAPs
    {
      const fwd = mkns('cfw');
      const c1 = mkns('cc1');
      const c2 = mkns('cc2');
      const p = spawn('nsenter', [`--net=/run/netns/${fwd}`, '--', tapfwdBin(), 'tfa', 'tfb'], { stdio: ['ignore', 'pipe', 'ignore'] });
      procs.push(p);
      let ready = false;
      p.stdout!.on('data', (d) => (ready ||= String(d).includes('ready')));
      if (!(await poll(() => ready, 5000, 50))) throw new Error('timed out waiting');
      for (const [tap, ns, addr] of [
        ['tfa', c1, '10.124.0.1/24'],
        ['tfb', c2, '10.124.0.2/24'],
      ]) {
        ip('-n', fwd, 'link', 'set', tap, 'netns', ns);
        ip('-n', ns, 'link', 'set', tap, 'name', 'eth0');
        ip('-n', ns, 'addr', 'add', addr, 'dev', 'eth0');
        ip('-n', ns, 'link', 'set', 'eth0', 'up');
      }
      pairs.cfwd = { name: 'C forwarder', client: c1, server: c2, serverIp: '10.124.0.2' };
    }
    // 3. usernet: a real daemon, two containers on one bridge network
    pairs.usernet = await twoContainers(lab, '10.125.0', 'usernet');
    // 4. usernet with adaptive busy-polling
    pairs.busy = await twoContainers(busyLab, '10.126.0', 'usernet busy-poll');
    // 5. kernel NAT: container → a router namespace doing nftables MASQUERADE → outside
    {
      const c = mkns('nc');
      const r = mkns('nr');
      const o = mkns('no');
      ip('-n', r, 'link', 'add', 'in0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', c);
      ip('-n', r, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', o);
      for (const [ns, dev, addr] of [
        [c, 'eth0', '10.130.0.2/24'],
        [r, 'in0', '10.130.0.1/24'],
        [r, 'up0', '192.0.2.2/24'],
        [o, 'eth0', '192.0.2.1/24'],
      ]) {
        ip('-n', ns, 'addr', 'add', addr, 'dev', dev);
        ip('-n', ns, 'link', 'set', dev, 'up');
      }
      ip('-n', c, 'route', 'add', 'default', 'via', '10.130.0.1');
      execFileSync('ip', ['netns', 'exec', r, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
      execFileSync('ip', ['netns', 'exec', r, 'nft', '-f', '-'], {
        input: 'table ip nat {\n chain post {\n  type nat hook postrouting priority 100;\n  oifname "up0" masquerade\n }\n}\n',
      });
      pairs.knat = { name: 'kernel NAT', client: c, server: o, serverIp: '192.0.2.1' };
    }
    // 6. usernet NAT: a container → usernet's masquerade → the uplink TAP, whose kernel side is in an outside namespace
    {
      await natLab.start();
      const o = mkns('uo');
      ip('-n', natLab.hostNs, 'link', 'set', 'unup0', 'netns', o);
      ip('-n', o, 'addr', 'add', '192.0.2.1/24', 'dev', 'unup0');
      ip('-n', o, 'link', 'set', 'unup0', 'up');
      natLab.ok('network', 'create', '--subnet', '10.131.0.0/24', 'bench');
      natLab.ok('run', '--name', 'c1', '--network', 'bench');
      pairs.unat = { name: 'usernet NAT', client: natLab.prefix + 'c1', server: o, serverIp: '192.0.2.1' };
    }
    // warm-up, the same for all: ARP caches, and usernet's JIT (a daemon that serves traffic is warm)
    for (const k of SETUPS) floodPing(pairs[k], 20000);
    for (let round = 0; round < rounds; round++) {
      for (const k of SETUPS) rtt[k].push(...pingTimes(pairs[k], Math.ceil(pings / rounds)));
      for (const k of SETUPS) runs[k].push(await iperf(pairs[k], seconds));
    }
  } finally {
    for (const p of procs) await stop(p);
    await lab.cleanup();
    await busyLab.cleanup();
    await natLab.cleanup();
    removeNetns(prefix);
  }
  const { g, t } = summarize(runs, rtt);
  const tcp = `iperf3 TCP ${seconds}s ×${rounds} (median)`;
  const png = `ping RTT p50 (${pings} pings)`;
  return [
    { name: tcp, value: g('usernet'), unit: 'Gbit/s', anchorName: 'C TAP forwarder', anchor: g('cfwd'), ratio: g('usernet') / g('cfwd'), note: 'target ≥ 1.0×' },
    { name: tcp, value: g('usernet'), unit: 'Gbit/s', anchorName: 'kernel bridge (veth)', anchor: g('kernel'), ratio: g('usernet') / g('kernel'), note: 'veth has TSO/GSO; TAP offloads are a later issue' },
    {
      name: png,
      value: t('usernet'),
      unit: 'µs',
      anchorName: 'C TAP forwarder',
      anchor: t('cfwd'),
      ratio: t('usernet') / t('cfwd'),
      note: `added ${(t('usernet') - t('cfwd')).toFixed(1)} µs (target ≤ +20 µs)`,
    },
    { name: png, value: t('usernet'), unit: 'µs', anchorName: 'kernel bridge (veth)', anchor: t('kernel'), ratio: t('usernet') / t('kernel') },
    {
      name: `${tcp}, --busy-poll ${BUSY_POLL_MS}`,
      value: g('busy'),
      unit: 'Gbit/s',
      anchorName: 'C TAP forwarder',
      anchor: g('cfwd'),
      ratio: g('busy') / g('cfwd'),
    },
    {
      name: `${png}, --busy-poll ${BUSY_POLL_MS}`,
      value: t('busy'),
      unit: 'µs',
      anchorName: 'C TAP forwarder',
      anchor: t('cfwd'),
      ratio: t('busy') / t('cfwd'),
      note: `added ${(t('busy') - t('cfwd')).toFixed(1)} µs; one core busy while traffic flows`,
    },
    { name: `${tcp}, container → outside via NAT`, value: g('unat'), unit: 'Gbit/s', anchorName: 'C TAP forwarder', anchor: g('cfwd'), ratio: g('unat') / g('cfwd'), note: 'target ≥ 1.0×' },
    {
      name: `${tcp}, container → outside via NAT`,
      value: g('unat'),
      unit: 'Gbit/s',
      anchorName: 'kernel router ns, nft masquerade',
      anchor: g('knat'),
      ratio: g('unat') / g('knat'),
      note: 'veth has TSO/GSO; TAP offloads are a later issue',
    },
    { name: `${png}, container → outside via NAT`, value: t('unat'), unit: 'µs', anchorName: 'kernel router ns, nft masquerade', anchor: t('knat'), ratio: t('unat') / t('knat') },
  ];
}
